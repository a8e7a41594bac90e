"""Cohort manifests: one row per study, stored as Parquet, schema-validated, content-hashed for lineage.

Columns (see :data:`MANIFEST_SCHEMA`):

- ``patient_id``, ``study_id``: identifiers (strings, non-empty; ``study_id`` unique).
- ``source``: the adapter that produced the row (``covid-cxr``, ``phantom``...).
- ``images``: list of image references, each ``{path, modality, view, kind, mask, series_uid}``; ``kind`` is
  ``2d`` or ``3d``; ``path`` is absolute or relative to the manifest's folder; ``mask`` is an optional
  segmentation aligned with the image (empty string when absent); ``series_uid`` picks one DICOM series when
  ``path`` is a folder holding several (empty otherwise). A study may have no images only when it has a
  report (a text-only corpus such as IU X-ray without its images).
- ``report``, ``findings``, ``impression``: report text and its sections (empty string when unknown).
- ``labels``: JSON object ``{observation: 1 | 0 | -1}`` (absent key = not mentioned / unknown).
- ``split``: ``train`` / ``val`` / ``test`` (or empty before splitting).
- ``sex`` (``M``/``F``/empty), ``age`` (years, NaN when unknown), ``view`` (primary view of the study).
- ``extra``: JSON object with any further source fields.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from medvl.errors import MedvlError

IMAGE_REF_TYPE = pa.struct(
    [
        ("path", pa.string()),
        ("modality", pa.string()),
        ("view", pa.string()),
        ("kind", pa.string()),
        ("mask", pa.string()),
        ("series_uid", pa.string()),
    ]
)

MANIFEST_SCHEMA = pa.schema(
    [
        ("patient_id", pa.string()),
        ("study_id", pa.string()),
        ("source", pa.string()),
        ("images", pa.list_(IMAGE_REF_TYPE)),
        ("report", pa.string()),
        ("findings", pa.string()),
        ("impression", pa.string()),
        ("labels", pa.string()),
        ("split", pa.string()),
        ("sex", pa.string()),
        ("age", pa.float64()),
        ("view", pa.string()),
        ("extra", pa.string()),
    ]
)

SPLITS = ("train", "val", "test")
HASH_KEY = b"medvl.manifest_hash"
_STRING_DEFAULTS = {"report": "", "findings": "", "impression": "", "split": "", "sex": "", "view": ""}


class ManifestError(MedvlError, ValueError):
    """A manifest row or file that does not follow the schema; the message names the row and field."""


def image_ref(
    path: str | Path,
    modality: str = "OT",
    view: str = "",
    kind: str = "2d",
    mask: str | Path = "",
    series_uid: str = "",
) -> dict:
    """Build one entry of the ``images`` column."""
    return {
        "path": str(path),
        "modality": modality,
        "view": view,
        "kind": kind,
        "mask": str(mask) if mask else "",
        "series_uid": series_uid or "",
    }


def make_row(
    *,
    patient_id: str,
    study_id: str,
    source: str,
    images: Iterable[Mapping[str, Any]],
    labels: Mapping[str, int] | None = None,
    extra: Mapping[str, Any] | None = None,
    age: float | None = None,
    **fields: str,
) -> dict:
    """Build a manifest row with defaults for the optional columns; labels and extra are JSON-encoded."""
    row = dict(_STRING_DEFAULTS)
    row.update(fields)
    row.update(
        patient_id=str(patient_id),
        study_id=str(study_id),
        source=source,
        images=[image_ref(**dict(ref)) for ref in images],
        labels=json.dumps({k: int(v) for k, v in (labels or {}).items()}, sort_keys=True),
        extra=json.dumps(dict(extra or {}), sort_keys=True, default=str),
        age=float("nan") if age is None else float(age),
    )
    unknown = set(row) - set(MANIFEST_SCHEMA.names)
    if unknown:
        raise ManifestError(f"study {study_id}: unknown manifest field(s) {sorted(unknown)}")
    return row


def validate(df: pd.DataFrame) -> None:
    """Raise :class:`ManifestError` naming the first offending row and field."""
    missing = [c for c in MANIFEST_SCHEMA.names if c not in df.columns]
    if missing:
        raise ManifestError(f"manifest lacks column(s) {missing}")
    for col in ("patient_id", "study_id", "source"):
        empty = df.index[df[col].isna() | (df[col].astype(str) == "")]
        if len(empty):
            raise ManifestError(f"row {empty[0]}: field '{col}' is empty")
    dup = df["study_id"][df["study_id"].duplicated()]
    if len(dup):
        raise ManifestError(f"study_id '{dup.iloc[0]}' appears more than once")
    bad_split = df.index[~df["split"].isin(("",) + SPLITS)]
    if len(bad_split):
        i = bad_split[0]
        raise ManifestError(f"row {i} (study {df.at[i, 'study_id']}): split '{df.at[i, 'split']}' not in {SPLITS}")
    for i, labels in zip(df.index, df["labels"], strict=True):
        try:
            values = json.loads(labels)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"row {i} (study {df.at[i, 'study_id']}): field 'labels' is not JSON: {exc}") from exc
        if not isinstance(values, dict) or any(v not in (1, 0, -1) for v in values.values()):
            raise ManifestError(f"row {i} (study {df.at[i, 'study_id']}): 'labels' must map names to 1, 0 or -1")
    for i, images, report in zip(df.index, df["images"], df["report"], strict=True):
        if (images is None or len(images) == 0) and not report:
            raise ManifestError(f"row {i} (study {df.at[i, 'study_id']}): no images and no report")


def _table(df: pd.DataFrame) -> pa.Table:
    ordered = df[MANIFEST_SCHEMA.names].reset_index(drop=True)
    return pa.Table.from_pandas(ordered, schema=MANIFEST_SCHEMA, preserve_index=False)


def content_hash(df: pd.DataFrame) -> str:
    """SHA-256 of the manifest's content (rows sorted by study_id, canonical JSON), independent of row order."""
    table = _table(df.sort_values("study_id", kind="stable"))
    digest = hashlib.sha256()
    for row in table.to_pylist():
        digest.update(json.dumps(row, sort_keys=True, default=str, allow_nan=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def from_rows(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A validated manifest DataFrame from rows built with :func:`make_row`."""
    df = pd.DataFrame(list(rows), columns=MANIFEST_SCHEMA.names)
    validate(df)
    return df


def write_manifest(df: pd.DataFrame, path: str | Path) -> str:
    """Validate and write ``df`` as Parquet (atomically); returns the content hash stored in its metadata."""
    validate(df)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = content_hash(df)
    table = _table(df)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), HASH_KEY: digest.encode()})
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return digest


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read and validate a manifest; ``df.attrs['hash']`` holds its content hash, ``df.attrs['root']`` its folder."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ManifestError(f"{path}: not a Parquet manifest ({exc})") from exc
    df = table.to_pandas()
    df["images"] = df["images"].map(lambda refs: [image_ref(**dict(r)) for r in refs] if refs is not None else [])
    try:
        validate(df)
    except ManifestError as exc:
        raise ManifestError(f"{path}: {exc}") from exc
    stored = (table.schema.metadata or {}).get(HASH_KEY)
    df.attrs["hash"] = stored.decode() if stored else content_hash(df)
    df.attrs["root"] = str(path.parent.resolve())
    return df


def resolve_path(df: pd.DataFrame, path: str) -> Path:
    """An image path from the manifest made absolute (relative paths are relative to the manifest's folder)."""
    p = Path(path)
    if p.is_absolute():
        return p
    return Path(df.attrs.get("root", ".")) / p


def labels_matrix(df: pd.DataFrame, label_space: list[str]) -> np.ndarray:
    """``(N, P)`` float array of labels in ``label_space`` order: 1, 0, -1, NaN where not mentioned."""
    out = np.full((len(df), len(label_space)), np.nan, dtype=np.float32)
    index = {name: j for j, name in enumerate(label_space)}
    for i, labels in enumerate(df["labels"]):
        for name, value in json.loads(labels).items():
            if name in index:
                out[i, index[name]] = value
    return out
