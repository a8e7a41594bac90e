"""An opened study as the viewer shows it: oriented slices in physical units, orientation, de-identified facts.

The slices are oriented exactly as the model input is (:func:`medvl.data.preprocess.canonical_slices`: volumes
as axial slices in the radiological view, radiographs head up), so heatmaps computed on the model input line up
with what the reviewer sees once the input's padding is cropped away.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from medvl.data.preprocess import canonical_slices, orient
from medvl.io import ImageRecord, axis_codes
from medvl.io.phi_check import dicom_phi_findings

OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S"}
SHOWN_FIELDS = ("patient_sex", "patient_age", "view_position", "body_part", "manufacturer", "bits_stored")
"""Metadata keys the panel may show: none identifies a patient (no names, ids, UIDs, dates, free text)."""
OLDEST_SHOWN_AGE = 89


@dataclass
class Study:
    """A study ready for viewing and analysis.

    Attributes:
        name: what the reviewer opened (file name or manifest study id).
        source: ``upload`` or ``manifest``.
        record: the loaded image (analysed from memory: uploads are deleted once opened).
        study_hash: SHA-256 of the content (feedback and audit refer to it, never to patient identifiers).
        modality: DICOM modality code (``OT`` when unknown).
        slices: ``(S, rows, cols)`` float32 in physical units (HU for CT), oriented like the model input.
        z_mm: ``(S,)`` slice positions in mm (0 for a 2D image).
        orientation: edge labels ``{"top", "bottom", "left", "right"}``, None when the file has no geometry.
        facts: de-identified fields for the metadata panel.
        identifiers_present: direct identifiers the DICOM header still carries (names only, never values).
    """

    name: str
    source: str
    record: ImageRecord
    study_hash: str
    modality: str
    slices: np.ndarray
    z_mm: np.ndarray
    orientation: dict[str, str] | None
    facts: dict[str, str]
    identifiers_present: list[str]

    @property
    def is_volume(self) -> bool:
        """True when there is more than one slice."""
        return self.slices.shape[0] > 1


def edge_labels(record: ImageRecord) -> dict[str, str] | None:
    """Patient directions at the image edges as displayed (oriented slices), or None without geometry."""
    if not record.metadata.get("spacing_known", True):
        return None
    codes = axis_codes(orient(record))
    columns, rows = codes[0], codes[1]
    return {"left": OPPOSITE[columns], "right": columns, "top": OPPOSITE[rows], "bottom": rows}


def deidentified_facts(record: ImageRecord, slices: np.ndarray) -> dict[str, str]:
    """The metadata panel: only :data:`SHOWN_FIELDS` plus geometry; ages above 89 shown as ``90+``."""
    facts = {"modality": record.modality, "format": str(record.metadata.get("format") or "")}
    for key in SHOWN_FIELDS:
        value = record.metadata.get(key)
        if value not in (None, ""):
            facts[key] = str(value)
    age = facts.get("patient_age", "")
    if age[:3].isdigit() and int(age[:3]) > OLDEST_SHOWN_AGE:
        facts["patient_age"] = "90+"
    facts["slices x rows x cols"] = " x ".join(str(v) for v in slices.shape)
    if record.metadata.get("spacing_known", True):
        facts["spacing (mm)"] = ", ".join(f"{v:.3g}" for v in record.spacing)
    return {k: v for k, v in facts.items() if v}


def header_identifiers(path: Path) -> list[str]:
    """Direct identifiers left in the DICOM header at ``path`` (first file of a folder); [] for other formats."""
    first = path if path.is_file() else next((p for p in sorted(path.iterdir()) if p.is_file()), None)
    if first is None:
        return []
    try:
        ds = pydicom.dcmread(first, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError):
        return []
    return [k for k in dicom_phi_findings(ds) if k != "PatientIdentityRemoved"]


def build_study(record: ImageRecord, path: Path, name: str, source: str, study_hash: str) -> Study:
    """The viewer's study from a loaded record (see :class:`Study`); ``path`` is read for header identifiers only."""
    slices = canonical_slices(record)
    return Study(
        name=name,
        source=source,
        record=record,
        study_hash=study_hash,
        modality=record.modality,
        slices=slices.pixels,
        z_mm=slices.z_mm,
        orientation=edge_labels(record),
        facts=deidentified_facts(record, slices.pixels),
        identifiers_present=header_identifiers(path),
    )


def path_hash(path: Path) -> str:
    """SHA-256 of a file's bytes, or of a folder's files (sorted relative names and bytes)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def describe(study: Study) -> dict[str, Any]:
    """The audit details of opening a study: no identifiers (not even the file name), only its kind and shape."""
    return {"source": study.source, "modality": study.modality, "shape": list(study.slices.shape)}
