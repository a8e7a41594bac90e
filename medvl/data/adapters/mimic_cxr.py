"""``mimic-cxr``: MIMIC-CXR-JPG (2.0.0 / 2.1.0) with the MIMIC-CXR free-text reports.

Layout (PhysioNet)::

    files/p10/p10000032/s50414267/<dicom_id>.jpg    images (p + first two digits of subject_id)
    mimic-cxr-2.0.0-split.csv.gz                    dicom_id, study_id, subject_id, split (train/validate/test)
    mimic-cxr-2.0.0-chexpert.csv.gz                 subject_id, study_id, the 14 CheXpert observations
    mimic-cxr-2.0.0-metadata.csv.gz                 dicom_id, ..., ViewPosition, Rows, Columns, StudyDate, ...
    files/p10/p10000032/s50414267.txt               report (from mimic-cxr-reports.zip; option ``reports=DIR``
                                                    when it lives elsewhere: the folder that holds ``files/``)

The split CSV lists the images; its split is kept (``validate`` -> ``val``). A study without a report file
is kept without text and the missing report is quarantined.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import pandas as pd

from medvl.data.adapters.base import Rejected, SourceAdapter, UnitResult
from medvl.data.adapters.common import (
    CHEXPERT_LABELS,
    XRAY_MODALITY,
    chexpert_labels,
    keep_readable,
    normalise_view,
    primary_view,
    report_sections,
)
from medvl.data.manifest import image_ref, make_row

SPLIT_NAMES = {"train": "train", "validate": "val", "test": "test"}
_TABLES = {"split": ("dicom_id", "study_id", "subject_id", "split"),
           "chexpert": ("subject_id", "study_id", *CHEXPERT_LABELS),
           "metadata": ("dicom_id", "ViewPosition")}


class MimicCxrAdapter(SourceAdapter):
    """Reads MIMIC-CXR-JPG; a unit is one study (``p10/p10000032/s50414267``)."""

    name = "mimic-cxr"
    description = "MIMIC-CXR-JPG: files/pXX/pSUBJECT/sSTUDY/*.jpg, split/chexpert/metadata CSVs, report .txt files"
    licence = "PhysioNet Credentialed Health Data License 1.5.0"

    def _table(self, kind: str) -> pd.DataFrame:
        matches = sorted(self.root.glob(f"mimic-cxr-*-{kind}.csv.gz"))
        if len(matches) != 1:
            found = ", ".join(p.name for p in matches) or "none"
            raise FileNotFoundError(f"{self.root}: need exactly one mimic-cxr-*-{kind}.csv.gz (found {found})")
        table = pd.read_csv(matches[0], dtype=str, keep_default_na=False)
        missing = [c for c in _TABLES[kind] if c not in table.columns]
        if missing:
            raise ValueError(f"{matches[0]}: missing column(s) {missing}")
        return table

    @cached_property
    def _tables(self) -> tuple[dict[str, list[dict]], dict[str, dict], dict[str, str]]:
        """Split rows by study path, CheXpert labels by study id and views by dicom id: all three tables are read
        (and a missing one refused) before any study."""
        studies: dict[str, list[dict]] = {}
        for record in self._table("split").to_dict("records"):
            subject, study = record["subject_id"], record["study_id"]
            studies.setdefault(f"p{subject[:2]}/p{subject}/s{study}", []).append(record)
        labels = {r["study_id"]: r for r in self._table("chexpert").to_dict("records")}
        metadata = self._table("metadata")
        return studies, labels, dict(zip(metadata["dicom_id"], metadata["ViewPosition"], strict=True))

    @property
    def _reports_root(self) -> Path:
        return Path(self.options.get("reports", self.root))

    def units(self) -> list[str]:
        """Study paths ``pXX/pSUBJECT/sSTUDY``, sorted."""
        return sorted(self._tables[0])

    def read_unit(self, unit: str) -> UnitResult:
        """One study: its readable images with views, report and sections, CheXpert labels, split."""
        studies, labels, views = self._tables
        records = sorted(studies[unit], key=lambda r: r["dicom_id"])
        first = records[0]
        splits = {r["split"] for r in records}
        if len(splits) > 1 or first["split"] not in SPLIT_NAMES:
            raise ValueError(f"study {unit}: split {sorted(splits)} is not one of {sorted(SPLIT_NAMES)}")
        refs = [
            image_ref(self.root / "files" / unit / f"{r['dicom_id']}.jpg", modality=XRAY_MODALITY,
                      view=normalise_view(views.get(r["dicom_id"], "")), kind="2d")
            for r in records
        ]
        kept, rejected = keep_readable(refs)
        if not kept:
            return UnitResult([], rejected)
        report_path = self._reports_root / "files" / f"{unit}.txt"
        report = ""
        if report_path.is_file():
            report = report_path.read_text(encoding="utf-8", errors="replace").strip()
        else:
            rejected.append(Rejected(str(report_path), "report file not found; study kept without text",
                                     "MissingFileError"))
        label_record = labels.get(first["study_id"])
        row = make_row(
            patient_id=first["subject_id"],
            study_id=first["study_id"],
            source=self.name,
            images=kept,
            labels=chexpert_labels(label_record) if label_record else {},
            view=primary_view(ref["view"] for ref in kept),
            split=SPLIT_NAMES[first["split"]],
            report=report,
            **report_sections(report),
        )
        return UnitResult([row], rejected)
