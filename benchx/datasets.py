"""Loading a card's data: the card's medvl source adapter reads the files, its split rule draws the benchmark.

Reading goes through :func:`medvl.data.ingest.ingest`, exactly as ``medvl ingest`` reads a source, so a benchmark
and a pretraining cohort of the same data share one reader. A benchmark must not silently shrink: a file the
source lists but cannot read stops the load (with the quarantine report's first entry); only the images that
ingestion leaves out as duplicates of another study's stay out. The split rules are in
:mod:`benchx.split_rules`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from benchx.cards import DatasetCard
from benchx.errors import IncompleteDataError
from benchx.split_rules import SOURCE_FRACTIONS, SPLIT_RULES
from medvl.data.adapters import get_adapter
from medvl.data.ingest import DUPLICATE_IMAGE, ingest
from medvl.data.manifest import read_manifest
from medvl.data.splits import check_patient_splits


def load_dataset(card: DatasetCard, root: Path, progress: bool = False) -> pd.DataFrame:
    """The benchmark manifest of ``card`` from the data at ``root``: read by the card's source adapter with the
    card's ``options``, then split by its ``split`` rule.

    Raises:
        FileNotFoundError: ``root`` is absent, or the source's layout file is missing.
        IncompleteDataError: the source lists images or reports that cannot be read.
        ValueError: the source's tables or the split rule's options are malformed.
    """
    adapter = get_adapter(card.source)
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{root}: {card.source} data not found; it should hold {adapter.description}")
    options = card.split_options
    with tempfile.TemporaryDirectory(prefix="benchx-ingest-") as tmp:
        result = ingest(card.source, root, Path(tmp) / "manifest.parquet", options=adapter_options(card),
                        split_fractions=tuple(float(f) for f in options.get("split_fractions", SOURCE_FRACTIONS)),
                        salt=str(options.get("salt", "benchx")), progress=progress, phi_policy="off")
        quarantine = pd.read_csv(result.quarantine, dtype=str, keep_default_na=False)
        df = read_manifest(result.manifest)
    missing = quarantine[quarantine["error_type"] != DUPLICATE_IMAGE]
    if len(missing):
        first = missing.iloc[0]
        raise IncompleteDataError(f"{first['path']}: {first['reason']} ({len(missing)} file(s) of {card.name} "
                                  f"could not be read; the complete dataset is needed)")
    df.attrs.pop("root", None)  # image paths are absolute
    df = SPLIT_RULES[card.split_rule].apply(df, options, card.name).reset_index(drop=True)
    check_patient_splits(df)
    return df


def adapter_options(card: DatasetCard) -> dict[str, str]:
    """The card's ``options`` as the adapter takes them (strings; YAML booleans as ``true`` / ``false``)."""
    return {key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in card.options.items()}
