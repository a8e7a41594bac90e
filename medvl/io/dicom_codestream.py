"""Checking that each compressed frame of a DICOM file is complete before it is decoded.

The JPEG decoders (pylibjpeg-libjpeg) return a full-size image without error for a codestream cut short,
filling the missing part with whatever the decoder guesses. So every JPEG (baseline, extended, lossless) and
JPEG-LS frame must start with the start-of-image marker and end with the end-of-image marker, and every
JPEG 2000 / HTJ2K codestream with its end-of-codestream marker (trailing ``00``/``FF`` padding allowed).
Neither marker can occur inside the entropy-coded data, so a frame cut anywhere fails the check.
"""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import UID, JPEG2000TransferSyntaxes, JPEGLSTransferSyntaxes, JPEGTransferSyntaxes

from medvl.io.errors import CorruptPixelDataError

_JPEG = frozenset(JPEGTransferSyntaxes + JPEGLSTransferSyntaxes)
_J2K = frozenset(JPEG2000TransferSyntaxes)
_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"  # JPEG start / end of image; JPEG 2000's EOC is also FFD9
_J2K_SOC = b"\xff\x4f\xff\x51"  # start of codestream + SIZ: a bare codestream (a JP2 file starts with a box)
_PADDING = b"\x00\xff"


def check_frames_complete(ds: Dataset, path: Path, syntax: UID, n_frames: int) -> None:
    """Refuse a JPEG, JPEG-LS or JPEG 2000 file whose frames are missing or cut short.

    Raises:
        CorruptPixelDataError: fewer frames than NumberOfFrames, or a frame without its start or end marker
            (the frame number is 1-based, as viewers show it).
    """
    if syntax not in _JPEG and syntax not in _J2K:
        return
    count = 0
    try:
        for count, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=n_frames), start=1):
            reason = _jpeg_problem(frame) if syntax in _JPEG else _j2k_problem(frame)
            if reason:
                raise CorruptPixelDataError(path, f"frame {count} of {n_frames} ({syntax.name}): {reason}")
    except CorruptPixelDataError:
        raise
    except Exception as exc:  # pydicom raises ValueError, struct.error... on broken item tags or lengths
        raise CorruptPixelDataError(
            path, f"encapsulated pixel data cannot be split into frames: {exc}"
        ) from exc
    if count < n_frames:
        raise CorruptPixelDataError(
            path,
            f"{count} compressed frame(s) where NumberOfFrames says {n_frames}: frames are missing",
        )


def _jpeg_problem(frame: bytes) -> str | None:
    if not frame.startswith(_SOI):
        return "the codestream does not start with the JPEG start-of-image marker (FFD8)"
    if not frame.rstrip(_PADDING).endswith(_EOI):
        return "the codestream has no JPEG end-of-image marker (FFD9): it is cut short (truncated data)"
    return None


def _j2k_problem(frame: bytes) -> str | None:
    if frame.startswith(_J2K_SOC) and not frame.rstrip(_PADDING).endswith(_EOI):
        return "the codestream has no JPEG 2000 end-of-codestream marker (FFD9): it is cut short (truncated data)"
    return None
