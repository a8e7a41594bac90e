"""Data stages: ingest the sources into one manifest, check it for identifiers, build the training cache."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from medvl.data.manifest import read_manifest, write_manifest
from pipelines.runner import Context, StageError

if TYPE_CHECKING:
    from medvl.data.phi_policy import PhiFinding

MANIFEST_DIR = "manifests"
COHORT = "cohort.parquet"
CACHE_DIR = "cache"
PHI_REPORT = "phi-check.json"


def ingest_stage(ctx: Context) -> dict[str, Any]:
    """Ingest every source (skipping optional ones that are absent) and join them into ``manifests/cohort.parquet``."""
    from medvl.data.ingest import ingest

    out_dir = ctx.work_dir / MANIFEST_DIR
    parts, counts = [], {}
    for i, source in enumerate(ctx.config.sources):
        if not Path(source.path).exists():
            if source.required:
                raise StageError(f"source {source.adapter}: {source.path} does not exist")
            ctx.say(f"  {source.adapter}: {source.path} absent, skipped (optional source)")
            continue
        result = ingest(source.adapter, source.path, out_dir / f"{i}-{source.adapter}.parquet",
                        options=source.options, progress=ctx.progress, phi_policy="off")  # checked in deid-check
        ctx.say(f"  {source.adapter}: {result.studies} studies, {result.quarantined} quarantined ({result.quarantine})")
        parts.append(result.manifest)
        counts[source.adapter] = result.studies
    if not parts:
        raise StageError("no source could be read; check 'sources' in the config")
    frames = [read_manifest(p) for p in parts]
    cohort = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    digest = write_manifest(cohort, out_dir / COHORT)
    return {"manifest": str(out_dir / COHORT), "manifest_hash": digest, "studies": counts}


def deid_check_stage(ctx: Context) -> dict[str, Any]:
    """Check the manifest's DICOM headers and report texts for identifiers (:mod:`medvl.data.phi_policy`);
    by policy ``refuse`` stop when any is found, else warn."""
    from medvl.data.phi_policy import scan_rows, summary

    df = read_manifest(ctx.state.outputs("ingest")["manifest"])
    findings = scan_rows(df.to_dict("records"), df.attrs["root"], progress=ctx.progress)
    report = ctx.work_dir / PHI_REPORT
    policy = ctx.config.deid.policy
    report.write_text(json.dumps({"policy": policy, "findings": [f.as_dict() for f in findings]}, indent=2) + "\n")
    if findings and policy == "refuse":
        raise StageError(f"deid.policy is 'refuse' and {summary(findings)}. De-identify the sources with "
                         f"'medvl deid IN OUT' and ingest OUT (full list: {report})")
    ctx.say(_warning(findings, df) if findings else "  no identifiers found")
    return {"report": str(report), "clean": not findings, "policy": policy}


def _warning(findings: Sequence[PhiFinding], df: pd.DataFrame) -> str:
    """One line: the identifiers found, or, when every one is in a synthetic source's study (the phantoms'
    fabricated names by design), just that."""
    from medvl.data.adapters import ADAPTERS
    from medvl.data.phi_policy import summary

    source_of = dict(zip(df["study_id"].astype(str), df["source"], strict=True))
    synthetic = {source_of.get(f.study_id) for f in findings}
    if all(name in ADAPTERS and ADAPTERS[name].synthetic for name in synthetic):
        return (f"  WARNING (policy warn): {len(findings)} source(s) of synthetic studies ({', '.join(sorted(synthetic))}) "
                f"carry the fabricated identifiers phantoms are made with; real sources: none flagged")
    return f"  WARNING (policy warn): {summary(findings)}"


def cache_stage(ctx: Context) -> dict[str, Any]:
    """Build (or finish) the training cache of the manifest."""
    from medvl.data.cache_build import build_cache
    from medvl.data.preprocess import PrepSettings

    c = ctx.config.cache
    result = build_cache(ctx.state.outputs("ingest")["manifest"], ctx.work_dir / CACHE_DIR,
                         PrepSettings(size=c.size, ct_window=c.ct_window, crop_body=c.crop_body), workers=c.workers, overwrite=True,
                         progress=ctx.progress)
    ctx.say(f"  {result.items} images ({result.slices} slices), {result.quarantined} quarantined")
    return {"cache": str(result.cache_dir), "key": result.key, "items": result.items}
