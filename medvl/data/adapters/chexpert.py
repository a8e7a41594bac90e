"""``chexpert``: CheXpert (``CheXpert-v1.0-small`` or full size): ``train.csv`` and ``valid.csv``.

Each CSV row is one image with ``Path`` (``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg``,
relative to the folder that holds ``CheXpert-v1.0-small``), ``Sex``, ``Age``, ``Frontal/Lateral``, ``AP/PA``
and the 14 observations (1.0 positive, 0.0 negative, -1.0 uncertain, blank not mentioned). A study is a
``patientNNNNN/studyN`` folder; its images must carry the same labels. ``train.csv`` rows get the ``train``
split and ``valid.csv`` rows ``val``. CheXpert ships no report text.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import PurePosixPath

import pandas as pd

from medvl.data.adapters.base import SourceAdapter, UnitResult
from medvl.data.adapters.common import (
    CHEXPERT_LABELS,
    XRAY_MODALITY,
    chexpert_labels,
    keep_readable,
    normalise_sex,
    normalise_view,
    parse_age,
    primary_view,
)
from medvl.data.manifest import image_ref, make_row

CSV_SPLITS = {"train.csv": "train", "valid.csv": "val"}
_COLUMNS = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS)


class CheXpertAdapter(SourceAdapter):
    """Reads the CheXpert CSVs; a unit is one study folder (``train/patient00001/study1``)."""

    name = "chexpert"
    description = "CheXpert: train.csv / valid.csv with Path, Sex, Age, view and 14 observations"
    licence = "Stanford University School of Medicine CheXpert Dataset Research Use Agreement"

    @cached_property
    def _studies(self) -> dict[str, list[dict]]:
        studies: dict[str, list[dict]] = {}
        found = False
        for csv_name, split in CSV_SPLITS.items():
            csv_path = self.root / csv_name
            if not csv_path.is_file():
                continue
            found = True
            table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
            missing = [c for c in _COLUMNS if c not in table.columns]
            if missing:
                raise ValueError(f"{csv_path}: missing column(s) {missing}")
            for record in table.to_dict("records"):
                parts = PurePosixPath(record["Path"]).parts
                if len(parts) < 5:
                    raise ValueError(f"{csv_path}: Path '{record['Path']}' is not <release>/<split>/<patient>/<study>/<view>")
                studies.setdefault("/".join(parts[1:4]), []).append({**record, "split": split})
        if not found:
            raise FileNotFoundError(f"{self.root}: neither train.csv nor valid.csv; point at the CheXpert-v1.0-small folder")
        return studies

    def units(self) -> list[str]:
        """Study keys ``<split folder>/<patient>/<study>``, sorted."""
        return sorted(self._studies)

    def read_unit(self, unit: str) -> UnitResult:
        """One study: its readable views, labels, sex, age and split."""
        records = self._studies[unit]
        first = records[0]
        labels = chexpert_labels(first)
        for record in records[1:]:
            if chexpert_labels(record) != labels:
                raise ValueError(f"study {unit}: images {first['Path']} and {record['Path']} carry different labels")
        base = self.root.parent if PurePosixPath(first["Path"]).parts[0] == self.root.name else self.root
        refs = [
            image_ref(base / r["Path"], modality=XRAY_MODALITY, view=_view(r), kind="2d")
            for r in sorted(records, key=lambda r: r["Path"])
        ]
        kept, rejected = keep_readable(refs)
        if not kept:
            return UnitResult([], rejected)
        patient, study = unit.split("/")[1:]
        row = make_row(
            patient_id=patient,
            study_id=f"{patient}/{study}",
            source=self.name,
            images=kept,
            labels=labels,
            age=parse_age(first["Age"]),
            sex=normalise_sex(first["Sex"]),
            view=primary_view(ref["view"] for ref in kept),
            split=first["split"],
        )
        return UnitResult([row], rejected)


def _view(record: dict) -> str:
    if record["Frontal/Lateral"].strip().lower() == "lateral":
        return "LATERAL"
    return normalise_view(record["AP/PA"])
