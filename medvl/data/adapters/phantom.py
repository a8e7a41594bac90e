"""``phantom``: a synthetic phantom cohort written by ``medvl synth`` (``studies.csv`` + study folders).

One unit is one study. By default (option ``images=dicom``) a study's image is its DICOM where it has one
(the CT series folder, or the DX/CR file of radiographs written as DICOM), so ingestion exercises the DICOM
path; ``images=files`` takes the PNG / NIfTI instead. The mask is the study's bit-coded lesion mask (see
:data:`medvl.data.phantom.MASK_BITS`), aligned with either. Labels are the ground truth (1 planted, 0 not:
every observation is known); the report's own statements, the phrasing pool and the planted findings' details
go to ``extra`` (``mentions``, ``phrasing``, ``details``), with the other image paths. Patients whose reports
use the held-out ``eval`` phrasings get split ``test`` (a source split, kept by ``medvl ingest`` unless
``--no-source-splits``), so their phrasings never reach training; the other patients are left to be drawn.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

from medvl.data.adapters.base import Rejected, SourceAdapter, UnitResult
from medvl.data.adapters.common import probe_file
from medvl.data.manifest import image_ref, make_row
from medvl.data.phantom import read_index

IMAGE_CHOICES = ("dicom", "files")
_EXTRA_FIELDS = (
    "kind",
    "index",
    "phrasing",
    "study_date",
    "photometric",
    "transfer_syntax",
    "shape",
    "spacing",
    "seed",
)


def _series_rejection(folder: Path) -> Rejected | None:
    if not folder.is_dir():
        return Rejected(str(folder), "DICOM series folder not found", "MissingFileError")
    if not any(folder.glob("*.dcm")):
        return Rejected(str(folder), "DICOM series folder holds no .dcm file", "NotAnImageError")
    return None


class PhantomAdapter(SourceAdapter):
    """Reads a phantom cohort folder; a unit is one study of ``studies.csv``."""

    name = "phantom"
    description = "synthetic phantom cohort from 'medvl synth' (studies.csv; option images=dicom|files)"
    synthetic = True
    licence = "generated locally by medvl synth: no patient data, no restrictions"

    def __init__(self, root: str | Path, **options: str) -> None:
        super().__init__(root, **options)
        self.images = options.get("images", "dicom")
        if self.images not in IMAGE_CHOICES:
            raise ValueError(
                f"phantom option images={self.images!r}: choose one of {', '.join(IMAGE_CHOICES)}"
            )

    @cached_property
    def _studies(self) -> dict[str, dict[str, str]]:
        return {row["study_id"]: row for row in read_index(self.root)}

    def units(self) -> list[str]:
        """Study ids in index order (2D studies, then 3D)."""
        return list(self._studies)

    def _image(self, study: dict[str, str]) -> tuple[dict, Rejected | None]:
        use_dicom = self.images == "dicom" and bool(study["dicom"])
        path = self.root / (study["dicom"] if use_dicom else study["image"])
        modality = study["modality"] if use_dicom or study["kind"] == "3d" else "DX"
        ref = image_ref(
            path, modality=modality, view=study["view"], kind=study["kind"], mask=self.root / study["mask"]
        )
        problem = _series_rejection(path) if use_dicom and study["kind"] == "3d" else probe_file(path)
        return ref, problem or probe_file(ref["mask"])

    def read_unit(self, unit: str) -> UnitResult:
        """One study: its image and mask, ground-truth labels, report and sections."""
        study = self._studies[unit]
        ref, problem = self._image(study)
        if problem is not None:
            return UnitResult([], [problem])
        extra = {field: study[field] for field in _EXTRA_FIELDS}
        extra.update(
            mentions=json.loads(study["mentions"]),
            details=json.loads(study["details"]),
            image_file=str(self.root / study["image"]),
            dicom=str(self.root / study["dicom"]) if study["dicom"] else "",
        )
        row = make_row(
            patient_id=study["patient_id"],
            study_id=study["study_id"],
            source=self.name,
            images=[ref],
            labels=json.loads(study["labels"]),
            extra=extra,
            age=float(study["age"]),
            sex=study["sex"],
            view=study["view"],
            report=study["report"],
            findings=study["findings"],
            impression=study["impression"],
            split="test" if study["phrasing"] == "eval" else "",
        )
        return UnitResult([row], [])
