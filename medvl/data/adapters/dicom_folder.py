"""``dicom-folder``: a PACS export (any tree of DICOM files) plus a reports CSV.

A unit is one directory (its files, not its subdirectories). Every file's header is read (pixels are not
decoded); files that are not DICOM, cannot be parsed, hold no pixel data (SR, DICOMDIR...) or lack the
ids a cohort needs go to the quarantine report. Files are grouped by StudyInstanceUID into one row per
study (studies spread over several directories are merged). Image references:

- projection images (CR, DX, MG, RF, XA, IO, PX, OT, SC...) and single-file, single-frame series: one ``2d``
  reference per file;
- cross-sectional series (CT, MR, PT, NM, US...) with several files or frames: one ``3d`` reference per
  series, ``path`` the directory holding it (the nearest common directory when it spans several) and
  ``series_uid`` set, for :func:`medvl.io.load` to stack.

Options: ``reports=CSV`` (required for report text), ``key=AccessionNumber|StudyInstanceUID`` (default: the
one the CSV has), ``text=COLUMN`` (default ``report``). Optional CSV columns ``findings`` and ``impression``
are used as given; otherwise they are split from the report text. A study with no row in the CSV is kept
without text and reported in the quarantine file.
"""

from __future__ import annotations

import os
from collections import defaultdict
from functools import cached_property
from pathlib import Path

import pandas as pd

from medvl.data.adapters.base import Rejected, SourceAdapter, UnitResult
from medvl.data.adapters.common import normalise_sex, normalise_view, parse_age, primary_view, report_sections
from medvl.data.manifest import ManifestError, image_ref, make_row
from medvl.io.dicom_file import looks_like_dicom, read_header, require_pixels
from medvl.io.errors import MedvlIOError, MetadataError, NotAnImageError

KEYS = ("AccessionNumber", "StudyInstanceUID")
CROSS_SECTIONAL = frozenset({"CT", "MR", "PT", "NM", "US", "OCT"})
"""Modalities whose series stack into volumes; any other modality is read image by image."""
_HEAD_BYTES = 132


class DicomFolderAdapter(SourceAdapter):
    """Reads a tree of DICOM files; a unit is one directory."""

    name = "dicom-folder"
    description = "a PACS export: any tree of DICOM files + reports CSV keyed by AccessionNumber/StudyInstanceUID"
    licence = "the hospital's own data: its data-use agreement"

    def units(self) -> list[str]:
        """Directories (relative to the root, ``.`` for the root) that directly hold files, sorted."""
        if not self.root.is_dir():
            raise NotADirectoryError(f"{self.root}: dicom-folder needs a folder")
        _ = self._reports  # a bad reports CSV stops ingestion here, before any unit is read
        found = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            if any(not f.startswith(".") for f in files):
                found.append(Path(folder).relative_to(self.root).as_posix())
        return sorted(found)

    @cached_property
    def _reports(self) -> tuple[str, dict[str, dict]]:
        """The key column and the reports CSV rows by key (empty without the option)."""
        if "reports" not in self.options:
            return KEYS[0], {}
        path = Path(self.options["reports"])
        if not path.is_file():
            raise FileNotFoundError(f"{path}: reports CSV not found")
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        key = self.options.get("key") or next((k for k in KEYS if k in table.columns), None)
        text = self.options.get("text", "report")
        if key not in table.columns:
            raise ValueError(f"{path}: no key column ({' or '.join(KEYS)}); columns are {list(table.columns)}")
        if text not in table.columns:
            raise ValueError(f"{path}: no report text column '{text}' (set it with --option text=COLUMN)")
        duplicated = table[key][table[key].duplicated() & (table[key] != "")]
        if len(duplicated):
            raise ValueError(f"{path}: {key} '{duplicated.iloc[0]}' has more than one report row")
        return key, {r[key]: r for r in table.to_dict("records") if r[key]}

    def read_unit(self, unit: str) -> UnitResult:
        """Read the headers of one directory's files and group them into study rows."""
        folder = self.root / unit
        rejected: list[Rejected] = []
        studies: dict[str, list[tuple[Path, object]]] = defaultdict(list)
        for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            try:
                ds = _image_header(path)
            except MedvlIOError as exc:
                rejected.append(Rejected.from_exception(path, exc))
                continue
            studies[str(ds.StudyInstanceUID)].append((path, ds))
        rows = []
        for study_uid, entries in sorted(studies.items()):
            row, missing = self._study_row(study_uid, entries, folder)
            rows.append(row)
            rejected.extend(missing)
        return UnitResult(rows, rejected)

    def _study_row(self, study_uid: str, entries: list, folder: Path) -> tuple[dict, list[Rejected]]:
        first = entries[0][1]
        patients = {str(ds.PatientID) for _, ds in entries}
        if len(patients) > 1:
            raise ValueError(f"{folder}: study {study_uid} holds files of patients {sorted(patients)}")
        key_column, reports = self._reports
        key = str(first.get(key_column, "") or "")
        report = reports.get(key)
        rejected = []
        if self.options.get("reports") and report is None:
            rejected.append(Rejected(str(folder), f"study {study_uid}: no report row for {key_column} '{key}'",
                                     "MissingReport"))
        text = (report or {}).get(self.options.get("text", "report"), "").strip()
        sections = report_sections(text)
        for name in ("findings", "impression"):
            if report and report.get(name, "").strip():
                sections[name] = report[name].strip()
        images = _image_refs(entries, folder)
        row = make_row(
            patient_id=str(first.PatientID),
            study_id=study_uid,
            source=self.name,
            images=images,
            age=parse_age(first.get("PatientAge", "")),
            sex=normalise_sex(first.get("PatientSex", "")),
            view=primary_view(ref["view"] for ref in images),
            report=text,
            extra={k: str(first.get(k, "")) for k in ("AccessionNumber", "StudyDate", "StudyDescription")},
            **sections,
        )
        return row, rejected

    def merge(self, rows: list[dict]) -> list[dict]:
        """Join the rows of one study found in several directories; a series spread over directories
        becomes one reference to their nearest common directory."""
        by_study: dict[str, dict] = {}
        for row in rows:
            kept = by_study.get(row["study_id"])
            if kept is None:
                by_study[row["study_id"]] = {**row, "images": list(row["images"])}
                continue
            if kept["patient_id"] != row["patient_id"]:
                raise ManifestError(f"study {row['study_id']} has files of patients {kept['patient_id']} and "
                                    f"{row['patient_id']}; fix the export or drop one")
            kept["images"] = _join_refs(kept["images"] + list(row["images"]))
            kept["view"] = primary_view(ref["view"] for ref in kept["images"])
        return [by_study[k] for k in sorted(by_study)]


def _image_header(path: Path):
    """The header of a DICOM image file; raises a ``MedvlIOError`` for anything a cohort cannot use."""
    with path.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
    if not looks_like_dicom(head):
        raise NotAnImageError(path, "not a DICOM file (no DICM prefix nor a DICOM first element)")
    ds = read_header(path, head)
    require_pixels(ds, path)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "PatientID"):
        if not str(ds.get(keyword, "") or "").strip():
            raise MetadataError(path, f"no {keyword}; a cohort needs it to group studies and split by patient")
    return ds


def _image_refs(entries: list, folder: Path) -> list[dict]:
    by_series: dict[str, list] = defaultdict(list)
    for path, ds in entries:
        by_series[str(ds.SeriesInstanceUID)].append((path, ds))
    refs = []
    for series_uid, files in sorted(by_series.items()):
        first = files[0][1]
        modality = str(first.get("Modality", "") or "OT")
        frames = sum(int(ds.get("NumberOfFrames", 1) or 1) for _, ds in files)
        if modality in CROSS_SECTIONAL and frames > 1:
            path = files[0][0] if len(files) == 1 else folder
            refs.append(image_ref(path, modality=modality, kind="3d", series_uid=series_uid))
            continue
        for path, ds in files:
            view = normalise_view(ds.get("ViewPosition", ""))
            refs.append(image_ref(path, modality=modality, view=view, kind="2d"))
    return refs


def _join_refs(refs: list[dict]) -> list[dict]:
    """Deduplicate references; 3D references of one series found in several directories become one, at
    their nearest common directory (:func:`medvl.io.load` searches a folder recursively)."""
    joined: dict[tuple, dict] = {}
    for ref in refs:
        key = ("3d", ref["series_uid"]) if ref["kind"] == "3d" else ("2d", ref["path"])
        if key in joined and joined[key]["path"] != ref["path"]:
            joined[key] = {**joined[key], "path": os.path.commonpath([joined[key]["path"], ref["path"]])}
        joined.setdefault(key, ref)
    return sorted(joined.values(), key=lambda r: (r["series_uid"], r["path"]))
