"""The PHI policy of ingestion: find the DICOM headers and report texts that still carry patient identifiers.

``medvl ingest --phi-policy warn|refuse|off`` applies it to the rows of a manifest before anything is written:

- DICOM images (a file, or the files of a series folder) are checked with
  :func:`medvl.io.phi_check.dicom_phi_findings`: names, IDs, birth date, address, phone, accession number...
  A header whose only finding is a missing ``PatientIdentityRemoved`` flag carries no identifier and passes;
  with the flag ``YES`` a PatientName / PatientID is taken to be a pseudonym.
- Report texts (``report``, ``findings``, ``impression``) are checked with :func:`medvl.text.phi.find_phi`
  (names, dates, record and accession numbers, phone numbers, e-mail and postal addresses, ages over 89).

PNG, JPEG, NIfTI and NRRD files carry no patient header and are not checked; neither are pixels (burned-in text).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pydicom
from tqdm import tqdm

from medvl.errors import MedvlError
from medvl.io.dicom_file import looks_like_dicom
from medvl.io.phi_check import IDENTITY_FLAG, dicom_phi_findings
from medvl.text.phi import find_phi

PHI_POLICIES = ("warn", "refuse", "off")
TEXT_FIELDS = ("report", "findings", "impression")
_HEAD_BYTES = 132
_SHOWN = 10


@dataclass(frozen=True)
class PhiFinding:
    """Identifiers found in one source: a DICOM file or series, or one text field of a study.

    Attributes:
        where: the DICOM file, ``<folder> series <uid>``, or ``study <id> <field>`` for report text.
        fields: DICOM keywords (``PatientName``...) or text PHI kinds (``NAME``, ``DATE``...).
        files: DICOM files of a series that carry them (1 for a file or a text field).
        study_id: the study the source belongs to.
    """

    where: str
    fields: tuple[str, ...]
    files: int
    study_id: str

    def line(self) -> str:
        """One line naming the source and its identifiers."""
        count = f" ({self.files} files)" if self.files > 1 else ""
        return f"{self.where}{count}: {', '.join(self.fields)}"

    def as_dict(self) -> dict:
        """A JSON-serialisable dict."""
        return {**asdict(self), "fields": list(self.fields)}


class PhiPolicyError(MedvlError, ValueError):
    """Ingestion refused by ``--phi-policy refuse``: sources still carry PHI; ``findings`` lists them all."""

    def __init__(self, findings: Sequence[PhiFinding]) -> None:
        self.findings = list(findings)
        super().__init__(f"refused by PHI policy 'refuse': {summary(self.findings)}; de-identify the source "
                         "first (medvl deid) or choose --phi-policy warn")


def check_policy(policy: str) -> str:
    """Validate a policy name; raises ``ValueError`` naming the choices."""
    if policy not in PHI_POLICIES:
        raise ValueError(f"PHI policy '{policy}': expected one of {', '.join(PHI_POLICIES)}")
    return policy


def summary(findings: Sequence[PhiFinding], shown: int = _SHOWN) -> str:
    """``N sources still carry PHI: a (X, Y); b (Z)... and M more`` on one line."""
    parts = [f.line() for f in findings[:shown]]
    more = f"; ... and {len(findings) - shown} more" if len(findings) > shown else ""
    return f"{len(findings)} source(s) still carry PHI: " + "; ".join(parts) + more


def _dicom_fields(path: Path) -> tuple[str, str, list[str]] | None:
    """``(series uid, study uid, identifiers)`` of a DICOM file; None for files that are not DICOM."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError:
        return None
    if not looks_like_dicom(head):
        return None
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=head[128:132] != b"DICM")
    except Exception:  # noqa: BLE001 - unreadable files are the adapters' business (they quarantine them)
        return None
    fields = [f for f in dicom_phi_findings(ds) if f != IDENTITY_FLAG]
    return str(ds.get("SeriesInstanceUID", "")), str(ds.get("StudyInstanceUID", "")), fields


def _series_files(folder: Path) -> Iterable[Path]:
    for parent, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        yield from (Path(parent) / name for name in sorted(files) if not name.startswith("."))


def _image_findings(ref: dict, base: Path, study_id: str) -> list[PhiFinding]:
    path = Path(ref["path"]) if Path(ref["path"]).is_absolute() else base / ref["path"]
    if path.is_file():
        found = _dicom_fields(path)
        return [PhiFinding(str(path), tuple(found[2]), 1, study_id)] if found and found[2] else []
    if not path.is_dir():
        return []
    fields: dict[str, None] = {}
    files = 0
    for file in _series_files(path):
        found = _dicom_fields(file)
        if found and found[2] and (not ref.get("series_uid") or found[0] == ref["series_uid"]):
            fields.update(dict.fromkeys(found[2]))
            files += 1
    if not files:
        return []
    where = f"{path} series {ref['series_uid']}" if ref.get("series_uid") else str(path)
    return [PhiFinding(where, tuple(fields), files, study_id)]


def _text_findings(row: dict) -> list[PhiFinding]:
    findings = []
    for name in TEXT_FIELDS:
        text = row.get(name) or ""
        kinds = tuple(dict.fromkeys(span.kind for span in find_phi(text))) if text else ()
        if kinds:
            findings.append(PhiFinding(f"study {row['study_id']} {name}", kinds, 1, str(row["study_id"])))
    return findings


def scan_rows(rows: Sequence[dict], base: str | Path, progress: bool = False) -> list[PhiFinding]:
    """The PHI findings of manifest rows: their DICOM images and their report texts.

    Args:
        rows: manifest rows (:func:`medvl.data.manifest.make_row`).
        base: folder that relative image paths are relative to (the manifest's folder).
        progress: show a progress bar on stderr.
    """
    base = Path(base)
    findings: list[PhiFinding] = []
    for row in tqdm(rows, desc="PHI check", unit="study", disable=not progress):
        for ref in row["images"]:
            findings.extend(_image_findings(ref, base, str(row["study_id"])))
        findings.extend(_text_findings(row))
    return findings


def apply_policy(policy: str, rows: Sequence[dict], base: str | Path, progress: bool = False) -> list[PhiFinding]:
    """Scan ``rows`` under ``policy``: ``off`` scans nothing, ``warn`` returns the findings, ``refuse`` raises.

    Raises:
        ValueError: unknown policy.
        PhiPolicyError: ``refuse`` and some source carries PHI.
    """
    if check_policy(policy) == "off":
        return []
    findings = scan_rows(rows, base, progress)
    if findings and policy == "refuse":
        raise PhiPolicyError(findings)
    return findings
