"""Loaders of the built-in datasets: the phantom cohort and covid-chestxray (``$MEDVL_REALDATA/cxr_covid``).

Both go through medvl's source adapters and ingestion, so the manifest is exactly what ``medvl ingest`` writes.
Patients without a source split are drawn by patient hash (:mod:`medvl.data.splits`) with the card option
``split_fractions`` (train, val, test); the phantom cohort puts its held-out-phrasing patients in test.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from benchx.datasets.registry import register_loader
from medvl.data.ingest import ingest
from medvl.data.manifest import read_manifest

DEFAULT_SPLIT_FRACTIONS = (0.65, 0.2, 0.15)


def ingest_source(source: str, root: Path, options: Mapping[str, Any], adapter_options: Mapping[str, str]) -> pd.DataFrame:
    """A validated manifest of ``root`` read by medvl adapter ``source`` with patient-level splits."""
    fractions = tuple(float(f) for f in options.get("split_fractions", DEFAULT_SPLIT_FRACTIONS))
    with tempfile.TemporaryDirectory(prefix="benchx-ingest-") as tmp:
        out = Path(tmp) / "manifest.parquet"
        ingest(source, root, out, split_fractions=fractions, salt=str(options.get("salt", "benchx")),
               options=dict(adapter_options), progress=False)
        df = read_manifest(out)
    df.attrs.pop("root", None)  # image paths are absolute
    return df


@register_loader("phantom")
def load_phantom(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """A phantom cohort folder written by ``medvl synth`` (PNG / NIfTI files, lesion masks, reports)."""
    return ingest_source("phantom", root, options, {"images": str(options.get("images", "files"))})


@register_loader("covid-cxr")
def load_covid_cxr(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """The covid-chestxray-dataset folder (``metadata.csv``, ``images/``, ``lung_masks/``)."""
    return ingest_source("covid-cxr", root, options, {})
