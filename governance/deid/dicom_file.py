"""De-identifying one DICOM file into the output tree.

The header is de-identified (:func:`governance.deid.dataset.deidentify_dataset`) and written as a DICOM Part 10
file in the original transfer syntax, with a zeroed 128-byte preamble (the original's can hold anything: a TIFF
header, an application's data); the pixel data bytes are copied as they are (no decoding, no re-encoding). Images that may carry burned-in text go to ``OUT/quarantine`` (header de-identified too) unless
burned-in text is allowed. DICOMDIR files are skipped: their records point at the original files and must be
rebuilt from the de-identified ones. A file counts as DICOM when it has the ``DICM`` marker, or starts like a
header without preamble and holds a ``SOPClassUID``.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from governance.deid.burned_in import burned_in_reason
from governance.deid.dataset import deidentify_dataset
from governance.deid.errors import DeidFileError
from governance.deid.keys import KeyedHasher
from governance.deid.outcome import DEIDENTIFIED, QUARANTINED, SKIPPED, FileOutcome, write_atomically

QUARANTINE_DIR = "quarantine"
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_NO_PREAMBLE_STARTS = (b"\x08\x00", b"\x02\x00", b"\x00\x08", b"\x00\x02")


def read_dicom(path: Path) -> Dataset | None:
    """The dataset in ``path``, or None when the file is not DICOM.

    Raises:
        DeidFileError: the file claims to be DICOM but cannot be parsed.
    """
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        pass
    except Exception as exc:  # pydicom raises many types on corrupt input
        raise DeidFileError(path, f"unreadable DICOM: {exc}") from exc
    with open(path, "rb") as handle:
        if handle.read(2) not in _NO_PREAMBLE_STARTS:
            return None
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception:
        return None
    return ds if "SOPClassUID" in ds else None


def _new_file_meta(ds: Dataset, original: FileMetaDataset | None, hasher: KeyedHasher, path: Path) -> FileMetaDataset:
    """A fresh file meta group for the de-identified ``ds``: the original transfer syntax, the (remapped) SOP
    instance, and pydicom as the writing implementation; the original's application entity titles and
    implementation identity are dropped. SOP UIDs left empty in the dataset are taken from the original meta."""
    original = original if original is not None else FileMetaDataset()
    sop_class = str(ds.get("SOPClassUID", "") or "") or str(original.get("MediaStorageSOPClassUID", "") or "")
    sop_instance = str(ds.get("SOPInstanceUID", "") or "")
    if not sop_instance and original.get("MediaStorageSOPInstanceUID"):
        sop_instance = hasher.uid(str(original.MediaStorageSOPInstanceUID))
    if not sop_class.strip() or not sop_instance.strip():
        raise DeidFileError(path, "no SOP Class UID or SOP Instance UID: not a storable DICOM instance")
    meta = FileMetaDataset()
    if "TransferSyntaxUID" in original:
        meta.TransferSyntaxUID = original.TransferSyntaxUID
    else:
        implicit, little = ds.original_encoding
        meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    return meta


def deidentify_dicom_file(src: Path, out_root: Path, rel: str, hasher: KeyedHasher, allow_burned_in: bool) -> FileOutcome:
    """De-identify one DICOM file into ``out_root/rel`` (or ``out_root/quarantine/rel``).

    Returns:
        The outcome; ``skipped`` when ``src`` is not DICOM or is a DICOMDIR.

    Raises:
        DeidFileError: unreadable, no SOP instance identity, or identifiers left after cleaning.
    """
    ds = read_dicom(src)
    if ds is None:
        return FileOutcome(rel, SKIPPED, reason="not DICOM or report text: not copied")
    if str(ds.get("SOPClassUID", "")) == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        return FileOutcome(rel, SKIPPED, reason="DICOMDIR: not copied, rebuild it from the de-identified files")
    reason = burned_in_reason(ds)
    original_meta = getattr(ds, "file_meta", None)
    counts = deidentify_dataset(ds, hasher).as_dict()
    ds.file_meta = _new_file_meta(ds, original_meta, hasher, src)
    ds.preamble = bytes(128)
    quarantine = reason is not None and not allow_burned_in
    out_rel = f"{QUARANTINE_DIR}/{rel}" if quarantine else rel
    try:
        write_atomically(out_root / out_rel, lambda p: ds.save_as(p, enforce_file_format=True))
    except (ValueError, TypeError, struct.error) as exc:
        raise DeidFileError(src, f"cannot write the de-identified file: {exc}") from exc
    if quarantine:
        return FileOutcome(rel, QUARANTINED, out_rel, reason, counts)
    note = f"burned-in text allowed: {reason}" if reason else ""
    return FileOutcome(rel, DEIDENTIFIED, out_rel, note, counts)
