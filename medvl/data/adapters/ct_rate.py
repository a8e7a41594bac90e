"""``ct-rate``: CT-RATE chest CT volumes (NIfTI) with reports, multi-abnormality labels and metadata.

Layout (Hugging Face ``ibrahimhamamci/CT-RATE``; the path may be the release folder or its ``dataset/``)::

    dataset/train/train_1/train_1_a/train_1_a_1.nii.gz           patient train_1, scan a, reconstruction 1
    dataset/train_fixed/...                                      the same tree with corrected headers (v2);
                                                                 used instead of train/ when present
    dataset/radiology_text_reports/train_reports.csv             VolumeName, ClinicalInformation_EN,
    dataset/radiology_text_reports/validation_reports.csv        Technique_EN, Findings_EN, Impressions_EN
    dataset/multi_abnormality_labels/train_predicted_labels.csv  VolumeName + 18 abnormalities (0/1)
    dataset/metadata/train_metadata.csv                          VolumeName, PatientSex, PatientAge,
                                                                 XYSpacing, ZSpacing, ... (optional)

A study is one scan (``train_1_a``); its reconstructions are its images. The volumes on disk define the
cohort (a partial download is a smaller cohort, not an error). ``train`` maps to the ``train`` split and
``valid`` to ``val``. When the metadata CSV is there, each volume's NIfTI header spacing must match its
``XYSpacing``/``ZSpacing``: the first CT-RATE release stored placeholder headers (spacing, origin and HU
rescale only in the CSV), and such a volume is quarantined rather than cached with a wrong geometry.
"""

from __future__ import annotations

import ast
import re
from functools import cached_property
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from medvl.data.adapters.base import Rejected, SourceAdapter, UnitResult
from medvl.data.adapters.common import keep_readable, normalise_sex, parse_age
from medvl.data.manifest import image_ref, make_row

ABNORMALITIES = (
    "Medical material",
    "Arterial wall calcification",
    "Cardiomegaly",
    "Pericardial effusion",
    "Coronary artery wall calcification",
    "Hiatal hernia",
    "Lymphadenopathy",
    "Emphysema",
    "Atelectasis",
    "Lung nodule",
    "Lung opacity",
    "Pulmonary fibrotic sequela",
    "Pleural effusion",
    "Mosaic attenuation pattern",
    "Peribronchial thickening",
    "Consolidation",
    "Bronchiectasis",
    "Interlobular septal thickening",
)
"""The 18 abnormalities of CT-RATE's multi-abnormality label CSVs (column order)."""

SPLITS = {"train": ("train", "train"), "valid": ("validation", "val")}
"""Folder prefix -> (CSV prefix of reports/metadata, manifest split)."""

REPORT_SECTIONS = (("ClinicalInformation_EN", "CLINICAL INFORMATION"), ("Technique_EN", "TECHNIQUE"),
                   ("Findings_EN", "FINDINGS"), ("Impressions_EN", "IMPRESSION"))
SPACING_TOLERANCE_MM = 0.01
_VOLUME = re.compile(r"^(?P<split>train|valid)_(?P<patient>\d+)_(?P<scan>[a-z]+)_(?P<recon>\d+)\.nii\.gz$")


class CtRateAdapter(SourceAdapter):
    """Reads a CT-RATE tree; a unit is one scan (``train_1_a``) with its reconstructions."""

    name = "ct-rate"
    description = "CT-RATE: dataset/{train,valid}[_fixed]/... NIfTI volumes, reports, labels and metadata CSVs"
    licence = "CC BY-NC-SA 4.0 (CT-RATE)"

    @property
    def _base(self) -> Path:
        return self.root / "dataset" if (self.root / "dataset").is_dir() else self.root

    @cached_property
    def _scans(self) -> dict[str, list[Path]]:
        scans: dict[str, list[Path]] = {}
        for folder in SPLITS:
            tree = self._base / f"{folder}_fixed"
            tree = tree if tree.is_dir() else self._base / folder
            for path in sorted(tree.glob("*/*/*.nii.gz")):
                match = _VOLUME.match(path.name)
                if match and match["split"] == folder:
                    scans.setdefault(path.parent.name, []).append(path)
        if not scans:
            raise FileNotFoundError(f"{self._base}: no train/ or valid/ volumes (<split>_N/<split>_N_x/*.nii.gz)")
        return scans

    def _csv(self, folder: str, pattern: str) -> dict[str, dict]:
        path = self._base / pattern.format(csv=SPLITS[folder][0], folder=folder)
        if not path.is_file():
            return {}
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "VolumeName" not in table.columns:
            raise ValueError(f"{path}: no VolumeName column")
        return {r["VolumeName"]: r for r in table.to_dict("records")}

    @cached_property
    def _reports(self) -> dict[str, dict]:
        return {k: v for f in SPLITS for k, v in self._csv(f, "radiology_text_reports/{csv}_reports.csv").items()}

    @cached_property
    def _labels(self) -> dict[str, dict]:
        return {k: v for f in SPLITS for k, v in
                self._csv(f, "multi_abnormality_labels/{folder}_predicted_labels.csv").items()}

    @cached_property
    def _metadata(self) -> dict[str, dict]:
        return {k: v for f in SPLITS for k, v in self._csv(f, "metadata/{csv}_metadata.csv").items()}

    def units(self) -> list[str]:
        """Scan ids (``train_1_a``), sorted."""
        return sorted(self._scans)

    def read_unit(self, unit: str) -> UnitResult:
        """One scan: its reconstructions, the report of the first one, labels, sex, age, split."""
        paths = self._scans[unit]
        kept, rejected = keep_readable(image_ref(p, modality="CT", kind="3d") for p in paths)
        checked = []
        for ref in kept:
            problem = self._check_geometry(Path(ref["path"]))
            if problem is None:
                checked.append(ref)
            else:
                rejected.append(problem)
        if not checked:
            return UnitResult([], rejected)
        names = [Path(ref["path"]).name for ref in checked]
        report = next((self._reports[n] for n in names if n in self._reports), None)
        if report is None:
            raise ValueError(f"scan {unit}: no report row for {names[0]} in radiology_text_reports/*_reports.csv")
        labels = {_label_tuple(self._labels[n]) for n in names if n in self._labels}
        if len(labels) > 1:
            raise ValueError(f"scan {unit}: reconstructions {names} carry different abnormality labels")
        meta = next((self._metadata[n] for n in names if n in self._metadata), {})
        match = _VOLUME.match(names[0])
        row = make_row(
            patient_id=f"{match['split']}_{match['patient']}",
            study_id=unit,
            source=self.name,
            images=checked,
            labels=dict(zip(ABNORMALITIES, labels.pop(), strict=True)) if labels else {},
            age=parse_age(meta.get("PatientAge")),
            sex=normalise_sex(meta.get("PatientSex")),
            split=SPLITS[match["split"]][1],
            report="\n\n".join(f"{title}: {report[col].strip()}" for col, title in REPORT_SECTIONS
                               if report.get(col, "").strip()),
            findings=report.get("Findings_EN", "").strip(),
            impression=report.get("Impressions_EN", "").strip(),
            extra={"volumes": names},
        )
        return UnitResult([row], rejected)

    def _check_geometry(self, path: Path) -> Rejected | None:
        """Compare the NIfTI header spacing with the metadata CSV (when there is one)."""
        meta = self._metadata.get(path.name)
        if not meta or not meta.get("XYSpacing") or not meta.get("ZSpacing"):
            return None
        try:
            header_spacing = np.asarray(nib.load(path).header.get_zooms()[:3], dtype=float)
            xy = [float(v) for v in ast.literal_eval(meta["XYSpacing"])]
            expected = np.asarray([*xy, float(meta["ZSpacing"])], dtype=float)
        except (ValueError, SyntaxError, OSError, nib.filebasedimages.ImageFileError) as exc:
            return Rejected(str(path), f"cannot compare header spacing with the metadata CSV ({exc})",
                            type(exc).__name__)
        if header_spacing.shape != (3,) or np.abs(header_spacing - expected).max() > SPACING_TOLERANCE_MM:
            return Rejected(
                str(path),
                f"NIfTI header spacing {header_spacing.round(4).tolist()} mm differs from the metadata CSV "
                f"{expected.round(4).tolist()} mm: a CT-RATE v1 volume with a placeholder header; download the "
                "*_fixed volumes (v2) or apply CT-RATE's fix_metadata.py",
                "SeriesGeometryError",
            )
        return None


def _label_tuple(record: dict) -> tuple[int, ...]:
    try:
        values = tuple(int(float(record[name])) for name in ABNORMALITIES)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{record.get('VolumeName')}: abnormality labels missing or not 0/1 ({exc})") from exc
    if any(v not in (0, 1) for v in values):
        raise ValueError(f"{record.get('VolumeName')}: abnormality labels must be 0 or 1")
    return values
