"""``mimic-cxr``: MIMIC-CXR-JPG with its reports, through medvl's ``mimic-cxr`` adapter (one row per study).

Layout (PhysioNet; see :mod:`medvl.data.adapters.mimic_cxr`)::

    files/p10/p10000032/s50414267/<dicom_id>.jpg
    mimic-cxr-2.0.0-split.csv.gz, mimic-cxr-2.0.0-chexpert.csv.gz, mimic-cxr-2.0.0-metadata.csv.gz
    files/p10/p10000032/s50414267.txt      reports (option ``reports``: the folder holding ``files/`` when apart)

Split rule: the official split CSV (``validate`` -> ``val``), as BenchX. Labels: the 14 CheXpert observations
(1 / 0 / -1 uncertain; absent = not mentioned).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from benchx.datasets.public.common import adapter_rows, require_root
from benchx.datasets.registry import register_loader
from medvl.data.adapters.mimic_cxr import MimicCxrAdapter
from medvl.data.manifest import from_rows
from medvl.data.splits import check_patient_splits

NAME = "mimic-cxr"
LAYOUT = "files/pXX/..., mimic-cxr-2.0.0-{split,chexpert,metadata}.csv.gz and the report .txt files"


@register_loader(NAME)
def load(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Studies of MIMIC-CXR-JPG with reports, CheXpert labels and the official split.

    Options:
        reports: the folder that holds the reports' ``files/`` tree when it is not the dataset folder.
    """
    adapter_options = {"reports": str(options["reports"])} if options.get("reports") else {}
    rows = adapter_rows(MimicCxrAdapter(require_root(root, NAME, LAYOUT), **adapter_options), NAME)
    df = from_rows(rows)
    check_patient_splits(df)
    return df
