"""``iu-xray``: the Indiana University chest X-ray collection (Open-i) through medvl's ``iu-xray`` adapter.

Layout: ``NLMCXR_reports.tgz`` (or its ``ecgen-radiology/`` folder) with ``NLMCXR_png/`` beside it (or option
``images``); one row per report that has text (findings or impression), with its images, sections and MeSH labels (see
:mod:`medvl.data.adapters.iu_xray`). Reports without text are left out, as R2Gen leaves them out.

Split rule: BenchX uses R2Gen's preprocessed copy, whose ``annotation.json`` fixes train / val / test
(7:1:2). Pass it as option ``r2gen_annotation`` to use that split exactly (reports R2Gen left out are left out
here too). Without it each report (its own patient: the collection has no patient ids) is placed by a salted
hash into 70 / 10 / 20, R2Gen's proportions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from benchx.datasets.public.common import adapter_rows, require_file
from benchx.datasets.registry import register_loader
from medvl.data.adapters.iu_xray import IuXrayAdapter
from medvl.data.manifest import from_rows
from medvl.data.splits import split_for_patient
from medvl.text.iu_xray import read_iu_reports

NAME = "iu-xray"
FRACTIONS = (0.7, 0.1, 0.2)
SALT = "benchx-iu-xray"


@register_loader(NAME)
def load(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Reports (and images) of IU X-ray with R2Gen's split or a hashed 70/10/20 split.

    Options:
        images: the ``NLMCXR_png`` folder when it does not sit beside the reports.
        r2gen_annotation: R2Gen's ``annotation.json``.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{root}: not found; iu-xray expects NLMCXR_reports.tgz or its ecgen-radiology/ folder")
    adapter_options = {"images": str(options["images"])} if options.get("images") else {}
    with_text = [r.report_id for r in read_iu_reports(root) if r.findings or r.impression]
    splits = r2gen_splits(Path(str(options["r2gen_annotation"]))) if options.get("r2gen_annotation") else None
    rows = adapter_rows(IuXrayAdapter(root, **adapter_options), NAME, with_text)
    if splits is not None:
        unknown = sorted(set(splits) - {r["study_id"] for r in rows})
        if unknown:
            raise ValueError(f"{options['r2gen_annotation']}: report {unknown[0]} is not in {root}")
        rows = [{**r, "split": splits[r["study_id"]]} for r in rows if r["study_id"] in splits]
    else:
        rows = [{**r, "split": split_for_patient(r["study_id"], FRACTIONS, SALT)} for r in rows]
    return from_rows(rows)


def r2gen_splits(path: Path) -> dict[str, str]:
    """``{report id: split}`` from R2Gen's ``annotation.json`` (ids ``CXR2384_IM-0942`` -> report ``CXR2384``)."""
    require_file(path, NAME, "R2Gen's annotation.json (option r2gen_annotation)")
    try:
        data = json.loads(path.read_text())
        pairs = [(entry["id"].split("_")[0], split) for split in ("train", "val", "test") for entry in data[split]]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not R2Gen's annotation.json (train/val/test lists of {{id, ...}}): {exc}") from exc
    splits: dict[str, str] = {}
    for report, split in pairs:
        if splits.setdefault(report, split) != split:
            raise ValueError(f"{path}: report {report} is in both {splits[report]} and {split}")
    return splits
