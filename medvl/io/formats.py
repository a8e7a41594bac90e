"""Telling file formats apart by their first bytes, not their names (DICOM files often have no suffix)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from medvl.io.dicom_file import looks_like_dicom
from medvl.io.errors import CorruptFileError, NotAnImageError

HEAD_BYTES = 544
"""Enough bytes for the DICOM preamble + prefix (132) and a NIfTI-1/2 header's magic."""
FORMATS = ("dicom", "nifti", "nrrd", "png", "jpeg")

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_GZIP_MAGIC = b"\x1f\x8b"


def read_head(path: Path, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of a file."""
    with open(path, "rb") as handle:
        return handle.read(size)


def sniff_format(path: Path, head: bytes) -> str:
    """The format of a file, one of :data:`FORMATS`.

    Raises:
        NotAnImageError: none of them (the reason shows the first bytes).
        CorruptFileError: a gzip file that cannot be decompressed.
    """
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    if head.startswith(b"NRRD"):
        return "nrrd"
    if head.startswith(_GZIP_MAGIC):
        if _is_nifti(_gunzip_head(path)):
            return "nifti"
        raise NotAnImageError(path, "a gzip file that does not hold a NIfTI image")
    if _is_nifti(head):
        return "nifti"
    if looks_like_dicom(head):
        return "dicom"
    raise NotAnImageError(
        path, f"not a DICOM, NIfTI, NRRD, PNG or JPEG file (starts with {head[:8]!r}); check the path"
    )


def _gunzip_head(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read(HEAD_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptFileError(path, f"gzip data cannot be decompressed: {exc}") from exc


def _is_nifti(head: bytes) -> bool:
    sizes = {int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big")} if len(head) >= 4 else set()
    if 348 in sizes:
        return head[344:348] in (b"n+1\x00", b"ni1\x00")
    if 540 in sizes:
        return head[4:8] in (b"n+2\x00", b"ni2\x00")
    return False
