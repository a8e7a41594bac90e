"""Ingestion: a source tree -> a validated cohort manifest, a quarantine report and an ingest record.

``ingest`` runs a source adapter over its units (in worker processes when asked), quarantines what cannot
be read and goes on, merges the rows into one row per study, drops studies that share an image file with
an earlier study (the same image under two ids would leak across splits), assigns patient-level splits and
writes three files side by side::

    manifest.parquet              the manifest (medvl.data.manifest)
    manifest.quarantine.csv       path, reason, error_type, unit of every file or unit left out
    manifest.ingest.json          source, root, options, shard, unit count, split settings, content hash,
                                  PHI policy and the sources that still carry PHI

Before writing, the rows go through the PHI policy (:mod:`medvl.data.phi_policy`): ``warn`` (default) records
the DICOM files and report texts that still carry patient identifiers, ``refuse`` raises and writes nothing,
``off`` skips the check.

With ``check_images`` every image reference is also decoded once with :func:`medvl.io.load` (and held to the
cache's orientation policy, :func:`medvl.io.validation.require_known_orientation`): a refused image goes to the
quarantine report with its reason and a study left without images is dropped, so the cache meets no image that
ingestion let through unread. Adapters read headers only otherwise.

With ``shard=(i, n)`` it takes every n-th unit starting at i; a shard manifest keeps only the splits given
by the source, and :func:`merge_shards` joins the n shards into the manifest an unsharded run writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from medvl.data.adapters import get_adapter
from medvl.data.adapters.base import Rejected, SourceAdapter, UnitResult
from medvl.data.manifest import from_rows, read_manifest, write_manifest
from medvl.data.phi_policy import PhiFinding, apply_policy, check_policy
from medvl.data.preprocess import load_for_training
from medvl.data.splits import DEFAULT_FRACTIONS, DEFAULT_SALT, assign_splits, check_fractions
from medvl.data.workers import process_pool
from medvl.errors import MedvlError
from medvl.io.errors import MedvlIOError

QUARANTINE_COLUMNS = ("path", "reason", "error_type", "unit")
DUPLICATE_IMAGE = "DuplicateImage"
"""Quarantine ``error_type`` of an image kept in one study of several that share it (not an unreadable file)."""
UNIT_ERRORS = (MedvlIOError, ValueError, OSError)
"""Exceptions that quarantine a unit; anything else is a bug and stops ingestion."""


class IngestError(MedvlError, ValueError):
    """Ingestion cannot produce a manifest (no studies, inconsistent or missing shards); the message says why."""


@dataclass(frozen=True)
class IngestResult:
    """What an ingestion (or a merge of shards) wrote and counted."""

    manifest: Path
    quarantine: Path
    record: Path
    studies: int
    units: int
    quarantined: int
    hash: str
    shard: tuple[int, int] = (0, 1)
    phi_findings: tuple[PhiFinding, ...] = ()


def sidecar_paths(manifest: str | Path) -> tuple[Path, Path]:
    """The quarantine report and ingest record written beside ``manifest``."""
    manifest = Path(manifest)
    stem = manifest.with_suffix("") if manifest.suffix == ".parquet" else manifest
    return stem.with_name(stem.name + ".quarantine.csv"), stem.with_name(stem.name + ".ingest.json")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; raises ``ValueError`` otherwise."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError as exc:
        raise ValueError(f"shard '{text}': expected i/n, e.g. 0/4") from exc
    check_shard((index, count))
    return index, count


def check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    """Validate a ``(index, count)`` shard."""
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= i < n")
    return index, count


def ingest(
    source: str,
    path: str | Path,
    out: str | Path,
    *,
    shard: tuple[int, int] = (0, 1),
    split_fractions: Sequence[float] = DEFAULT_FRACTIONS,
    salt: str = DEFAULT_SALT,
    source_splits: bool = True,
    workers: int = 0,
    options: Mapping[str, str] | None = None,
    progress: bool = True,
    phi_policy: str = "warn",
    check_images: bool = False,
) -> IngestResult:
    """Ingest one source tree (or one shard of it) into a manifest.

    Args:
        source: adapter name (``covid-cxr``, ``mimic-cxr``, ``dicom-folder``...).
        path: the source's root folder (or file, for adapters that read one).
        out: the manifest to write (Parquet); the quarantine report and record go beside it.
        shard: ``(i, n)``: take units ``i, i+n, i+2n...``.
        split_fractions: approximate (train, val, test) shares of patients without a source split.
        salt: salt of the patient hash (see :mod:`medvl.data.splits`).
        source_splits: keep the splits the source gives (MIMIC-CXR, CheXpert, CT-RATE); False re-draws
            every patient by hash.
        workers: worker processes reading units (0: in this process).
        options: adapter options (``reports=...`` for ``dicom-folder``...).
        progress: show a progress bar on stderr.
        phi_policy: ``warn`` (record the sources that still carry PHI in the result and the ingest record),
            ``refuse`` (raise, write nothing) or ``off`` (see :mod:`medvl.data.phi_policy`).
        check_images: decode every image once and quarantine those medvl refuses (see above).

    Raises:
        KeyError: unknown source.
        IngestError: an unsharded run found no study.
        PhiPolicyError: ``phi_policy="refuse"`` and a DICOM header or report text carries PHI (nothing written).
        ValueError, OSError, MedvlIOError: the source as a whole cannot be read (missing index CSV...).
    """
    index, count = check_shard(shard)
    check_fractions(split_fractions)
    check_policy(phi_policy)
    options = dict(options or {})
    root = Path(path).resolve()
    adapter_class = get_adapter(source)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    adapter = adapter_class(root, **options)
    units = adapter.units()
    mine = units[index::count]
    rows: list[dict] = []
    quarantine: list[dict] = []
    for unit, result in _read_units(adapter, source, root, options, mine, workers, progress):
        rows.extend(result.rows)
        quarantine.extend(_entry(rejected, unit) for rejected in result.rejected)
    rows = adapter.merge(rows)
    if check_images:
        rows, refused = _checked_rows(rows, workers, progress)
        quarantine.extend(refused)
    final = count == 1
    if final:
        rows, duplicates = drop_shared_images(rows)
        quarantine.extend(duplicates)
    df = from_rows(rows)
    if final:
        df = _final_splits(df, split_fractions, salt, source_splits)
    phi = apply_policy(phi_policy, rows, Path(out).resolve().parent, progress)
    quarantine_path, record_path = sidecar_paths(out)
    write_quarantine(quarantine, quarantine_path)
    if final and df.empty:
        raise IngestError(
            f"{root}: no studies found for source '{source}' ({len(units)} units, {len(quarantine)} "
            f"quarantined; see {quarantine_path})"
        )
    digest = write_manifest(df, out)
    record = {
        "source": source,
        "root": str(root),
        "options": options,
        "shard": [index, count],
        "units_total": len(units),
        "units_digest": _digest(units),
        "units": len(mine),
        "studies": len(df),
        "quarantined": len(quarantine),
        "split_fractions": list(split_fractions),
        "salt": salt,
        "source_splits": source_splits,
        "hash": digest,
        "phi_policy": phi_policy,
        "phi_findings": [finding.as_dict() for finding in phi],
        "check_images": check_images,
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return IngestResult(Path(out), quarantine_path, record_path, len(df), len(mine), len(quarantine), digest,
                        (index, count), tuple(phi))


def merge_shards(shards: Sequence[str | Path], out: str | Path) -> IngestResult:
    """Join the manifests of ``ingest(..., shard=(i, n))`` for every i into one final manifest.

    The shards must come from the same source, root, options and unit list, and all n must be present; the
    result is the manifest an unsharded run writes (same rows, splits and content hash).

    Raises:
        IngestError: a shard's record is missing, the shards disagree, or one is missing or repeated.
    """
    if not shards:
        raise IngestError("no shard manifests to merge")
    records = [_read_record(Path(p)) for p in shards]
    first = records[0]
    same = ("source", "root", "options", "units_total", "units_digest", "split_fractions", "salt", "source_splits")
    for path, record in zip(shards, records, strict=True):
        for key in same:
            if record[key] != first[key]:
                raise IngestError(f"{path}: {key} {record[key]!r} differs from {shards[0]}'s {first[key]!r}")
        if record["shard"][1] != first["shard"][1]:
            raise IngestError(f"{path}: shard {record['shard']} is from a different split into shards")
    count = first["shard"][1]
    indices = sorted(r["shard"][0] for r in records)
    if indices != list(range(count)):
        missing = sorted(set(range(count)) - set(indices))
        raise IngestError(f"need shards 0..{count - 1} exactly once; got {indices} (missing {missing})")
    adapter = get_adapter(first["source"])(first["root"], **first["options"])
    frames = [read_manifest(p) for p in shards]
    rows = adapter.merge([row for frame in frames for row in frame.to_dict("records")])
    rows, duplicates = drop_shared_images(rows)
    quarantine = [entry for path in shards for entry in _read_quarantine(Path(path))] + duplicates
    df = _final_splits(from_rows(rows), first["split_fractions"], first["salt"], first["source_splits"])
    quarantine_path, record_path = sidecar_paths(out)
    write_quarantine(quarantine, quarantine_path)
    digest = write_manifest(df, out)
    units = sum(r["units"] for r in records)
    record = {**first, "shard": [0, 1], "units": units, "studies": len(df), "quarantined": len(quarantine),
              "hash": digest, "merged_from": [str(Path(p).resolve()) for p in shards],
              "phi_findings": [finding for r in records for finding in r.get("phi_findings", [])]}
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return IngestResult(Path(out), quarantine_path, record_path, len(df), units, len(quarantine), digest)


def drop_shared_images(rows: Iterable[dict]) -> tuple[list[dict], list[dict]]:
    """Drop each study that shares an image file with a study earlier in ``study_id`` order.

    Returns the kept rows and quarantine entries naming the shared file and both studies.
    """
    owner: dict[str, dict] = {}
    kept: list[dict] = []
    dropped: list[dict] = []
    for row in sorted(rows, key=lambda r: r["study_id"]):
        paths = [ref["path"] for ref in row["images"]]
        clash = next((p for p in paths if p in owner), None)
        if clash is None:
            owner.update(dict.fromkeys(paths, row))
            kept.append(row)
            continue
        other = owner[clash]
        reason = (f"study {row['study_id']} (patient {row['patient_id']}) shares this image with study "
                  f"{other['study_id']} (patient {other['patient_id']}); kept study {other['study_id']} only")
        dropped.append({"path": clash, "reason": reason, "error_type": DUPLICATE_IMAGE, "unit": row["study_id"]})
    return kept, dropped


def write_quarantine(entries: Iterable[Mapping[str, str]], path: str | Path) -> None:
    """Write quarantine entries (``path, reason, error_type, unit``) as CSV, header only when none."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(list(entries), columns=list(QUARANTINE_COLUMNS)).to_csv(path, index=False)


def _final_splits(df: pd.DataFrame, fractions: Sequence[float], salt: str, source_splits: bool) -> pd.DataFrame:
    if not source_splits:
        df = df.assign(split="")
    return assign_splits(df, fractions, salt)


def _entry(rejected: Rejected, unit: str) -> dict:
    return {"path": rejected.path, "reason": rejected.reason, "error_type": rejected.error_type, "unit": unit}


def _digest(units: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(units).encode()).hexdigest()


def _read_quarantine(manifest: Path) -> list[dict]:
    path = sidecar_paths(manifest)[0]
    if not path.is_file():
        raise IngestError(f"{manifest}: no quarantine report {path.name} beside it")
    return pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")


def _read_record(manifest: Path) -> dict:
    record_path = sidecar_paths(manifest)[1]
    if not record_path.is_file():
        raise IngestError(f"{manifest}: no ingest record {record_path.name} beside it; was it written by medvl ingest?")
    return json.loads(record_path.read_text())


def _checked_rows(rows: list[dict], workers: int, progress: bool) -> tuple[list[dict], list[dict]]:
    """The rows with only the images medvl loads; quarantine entries for the others (unit: the study)."""
    refs = [ref for row in rows for ref in row["images"]]
    problems: list[dict | None] = []
    with tqdm(total=len(refs), desc="check images", unit="image", disable=not progress) as bar:
        with process_pool(workers, [__name__]) if workers > 0 else nullcontext() as pool:
            for problem in pool.map(_image_problem, refs) if pool else map(_image_problem, refs):
                problems.append(problem)
                bar.update()
    found = iter(problems)
    kept, quarantine = [], []
    for row in rows:
        images = []
        for ref in row["images"]:
            problem = next(found)
            if problem is None:
                images.append(ref)
            else:
                quarantine.append({**problem, "unit": row["study_id"]})
        if images:
            kept.append({**row, "images": images})
    return kept, quarantine


def _image_problem(ref: dict) -> dict | None:
    """None when medvl loads the image (with known orientation where it needs one), else its quarantine entry."""
    try:
        load_for_training(ref)
    except Exception as exc:  # noqa: BLE001 - a batch check quarantines whatever cannot be read, and goes on
        rejected = Rejected.from_exception(ref["path"], exc)
        return {"path": rejected.path, "reason": rejected.reason, "error_type": rejected.error_type}
    return None


_WORKER_ADAPTER: SourceAdapter | None = None


def _init_worker(source: str, root: Path, options: dict[str, str]) -> None:
    global _WORKER_ADAPTER
    _WORKER_ADAPTER = get_adapter(source)(root, **options)


def _read_in_worker(unit: str) -> tuple[str, UnitResult]:
    if _WORKER_ADAPTER is None:
        raise RuntimeError("ingest worker used before _init_worker")
    return _read_one(unit, _WORKER_ADAPTER)


def _read_one(unit: str, adapter: SourceAdapter) -> tuple[str, UnitResult]:
    try:
        return unit, adapter.read_unit(unit)
    except UNIT_ERRORS as exc:
        return unit, UnitResult([], [Rejected.from_exception(unit, exc)])


def _read_units(
    adapter: SourceAdapter,
    source: str,
    root: Path,
    options: dict[str, str],
    units: list[str],
    workers: int,
    progress: bool,
) -> Iterator[tuple[str, UnitResult]]:
    bar = tqdm(total=len(units), desc=f"ingest {source}", unit="unit", disable=not progress)
    with bar:
        if workers <= 0:
            for unit in units:
                yield _read_one(unit, adapter)
                bar.update()
            return
        with process_pool(workers, [__name__], initializer=_init_worker, initargs=(source, root, options)) as pool:
            chunk = max(1, min(64, len(units) // (workers * 8)))
            for result in pool.map(_read_in_worker, units, chunksize=chunk):
                yield result
                bar.update()
