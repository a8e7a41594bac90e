"""Reading one DICOM file's header, with typed refusals, and typed access to its attributes.

Headers are read once with large values (pixel data, big private blobs) deferred: they are fetched from the
file only when decoded, so scanning a folder costs one header parse per file and the pixels of the chosen
series are read once.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset, read_preamble
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from medvl.io.errors import (
    CorruptFileError,
    CorruptPixelDataError,
    MetadataError,
    NoPixelDataError,
    NotAnImageError,
    UnsupportedTransferSyntaxError,
)
from medvl.io.limits import DecodedSizeError, check_deflated_stream

DEFER_SIZE = 4096
"""Element values larger than this many bytes are read from the file only when accessed."""

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_NATIVE_SYNTAX = {
    (True, True): ImplicitVRLittleEndian,
    (False, True): ExplicitVRLittleEndian,
    (False, False): ExplicitVRBigEndian,
}
_FIRST_GROUPS = (0x0002, 0x0008)
_UNDEFINED_LENGTH = 0xFFFFFFFF
_END_OF_FILE_WARNING = "End of file reached before delimiter"
_META_PROBE_BYTES = 2048
_DEFLATED_UID = DeflatedExplicitVRLittleEndian.encode()


def looks_like_dicom(head: bytes) -> bool:
    """True for the first 132 bytes of a DICOM file: the ``DICM`` prefix, or (no preamble) a first
    element in group 0002 or 0008, little or big endian."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    return (
        int.from_bytes(head[:2], "little") in _FIRST_GROUPS
        or int.from_bytes(head[:2], "big") in _FIRST_GROUPS
    )


def read_header(path: Path, head: bytes) -> Dataset:
    """Parse a DICOM file with pixel data deferred.

    A deflated file's dataset is inflated in chunks against the decoded-size limit first (pydicom inflates it
    in one piece while it reads the header).

    Args:
        path: the file.
        head: its first 132 bytes (to tell files with a preamble from preamble-less ones).

    Raises:
        NotAnImageError: pydicom does not recognise the file as DICOM.
        CorruptFileError: the header cannot be parsed, or no element could be read (truncated file).
        CorruptPixelDataError: the header is intact but the file ends inside its encapsulated pixel data.
        DecodedSizeError: a deflated dataset inflates beyond :func:`medvl.io.limits.max_decoded_bytes`.
    """
    force = head[128:132] != b"DICM"
    _check_deflated_size(path, force)
    ds, cut_short = _dcmread(path, force=force, defer_size=DEFER_SIZE)
    if cut_short:
        header, header_cut = _dcmread(path, force=force, stop_before_pixels=True)
        if len(header) and not header_cut:
            raise CorruptPixelDataError(
                path,
                "the file ends inside its encapsulated pixel data (no sequence delimiter): truncated file",
            )
        raise CorruptFileError(path, "the file ends inside a sequence of its header: truncated file")
    if len(ds) == 0:
        raise CorruptFileError(
            path, "no DICOM data element could be read after the file meta (truncated or corrupt file)"
        )
    return ds


def _dcmread(path: Path, **options: object) -> tuple[Dataset, bool]:
    """``pydicom.dcmread`` with typed refusals; also True when pydicom hit the end of the file inside an
    undefined-length element (it warns and returns what it read; the warning is not passed on)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, **options)
        except InvalidDicomError as exc:
            raise NotAnImageError(path, f"not a DICOM file ({exc})") from exc
        except MemoryError as exc:
            raise DecodedSizeError(path, "not enough memory to read the DICOM header") from exc
        except Exception as exc:  # pydicom raises struct.error, EOFError, ValueError... on bad bytes
            raise CorruptFileError(path, f"DICOM header cannot be parsed: {exc}") from exc
    cut_short = False
    for warning in caught:
        if _END_OF_FILE_WARNING in str(warning.message):
            cut_short = True
        else:
            warnings.warn(warning.message, warning.category, stacklevel=3)
    return ds, cut_short


def _check_deflated_size(path: Path, force: bool) -> None:
    """Bound the inflated dataset of a deflated file; any other file, or a file meta pydicom cannot read (the
    full read then refuses it), passes. A file meta that ends where its group length says, without the
    deflated syntax's UID, is passed without parsing it (most files: no second parse)."""
    with open(path, "rb") as handle, warnings.catch_warnings():
        start = handle.read(_META_PROBE_BYTES)
        end = _meta_end(start)
        if end is not None and _DEFLATED_UID not in start[:end]:
            return
        handle.seek(0)
        warnings.simplefilter("ignore")  # the full read passes pydicom's warnings on
        try:
            read_preamble(handle, force)
            meta = read_dataset(handle, False, True, stop_when=lambda tag, vr, length: tag.group != 2)
            deflated = meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian
        except Exception:  # the full read below says what is wrong
            return
        if deflated:
            check_deflated_stream(path, handle)


def _meta_end(start: bytes) -> int | None:
    """Where the file meta in the first bytes of a file ends, from its group length, when that is checkable:
    the next element is outside group 0002 (a false group length is then caught). None otherwise."""
    offset = 132 if start[128:132] == b"DICM" else 0
    if start[offset : offset + 6] != b"\x02\x00\x00\x00UL":
        return None
    end = offset + 12 + int.from_bytes(start[offset + 8 : offset + 12], "little")
    return end if end + 2 <= len(start) and start[end : end + 2] != b"\x02\x00" else None


def has_pixels(ds: Dataset) -> bool:
    """True when the dataset holds (integer or float) pixel data."""
    return any(keyword in ds for keyword in PIXEL_KEYWORDS)


def expects_pixels(ds: Dataset) -> bool:
    """True for an image object: an image storage SOP class, or image pixel attributes (Rows)."""
    sop = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    return "Rows" in ds or (sop is not None and "Image Storage" in UID(sop).name)


def require_pixels(ds: Dataset, path: Path) -> None:
    """Refuse objects without pixel data, naming what they are.

    Raises:
        NoPixelDataError: no pixel data: a non-image object (SR, RT plan, waveform...), or an image object
            stored without its pixels (or cut just before them).
    """
    if has_pixels(ds):
        return
    sop = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    kind = UID(sop).name if sop else "DICOM object"
    if expects_pixels(ds):
        raise NoPixelDataError(
            path,
            f"a {kind} object without pixel data (stored without its pixels, or the file ends just before "
            "them): nothing to show",
        )
    modality = ds.get("Modality") or "unknown modality"
    raise NoPixelDataError(
        path, f"no pixel data: a {kind} ({modality}), not an image; skip it or load the image files"
    )


def transfer_syntax(ds: Dataset, path: Path) -> UID:
    """The file's transfer syntax; for files without file meta, the native syntax pydicom detected.

    The detected syntax is written into ``ds.file_meta`` so pydicom can decode the pixels.

    Raises:
        UnsupportedTransferSyntaxError: no file meta and the pixel data is encapsulated (codec unknown).
    """
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        return UID(uid)
    if _is_encapsulated(ds):
        raise UnsupportedTransferSyntaxError(
            path,
            "no Transfer Syntax UID in the file meta and the pixel data is compressed: the codec is unknown",
        )
    implicit, little = ds.original_encoding
    uid = _NATIVE_SYNTAX.get((bool(implicit), bool(little)), ExplicitVRLittleEndian)
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    meta.TransferSyntaxUID = uid
    return uid


def _is_encapsulated(ds: Dataset) -> bool:
    if "PixelData" not in ds:
        return False
    elem = ds.get_item("PixelData")
    return getattr(elem, "length", 0) == _UNDEFINED_LENGTH or getattr(elem, "is_undefined_length", False)


def text(ds: Dataset, keyword: str) -> str | None:
    """A string attribute (multi-valued ones joined by ``\\``), ``None`` when absent or empty."""
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "\\".join(str(v) for v in value) or None
    return str(value).strip() or None


def number(ds: Dataset, keyword: str, path: Path, default: float | None = None) -> float | None:
    """A numeric attribute as float (the first value of a multi-valued one), ``default`` when absent/empty.

    Raises:
        MetadataError: the value is not a number.
    """
    values = numbers(ds, keyword, path)
    return values[0] if values else default


def numbers(ds: Dataset, keyword: str, path: Path) -> list[float]:
    """A numeric attribute as a list of floats (empty when absent or empty).

    Raises:
        MetadataError: a value is not a number.
    """
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    items = value if isinstance(value, Sequence) and not isinstance(value, str | bytes) else [value]
    try:
        return [float(v) for v in items]
    except (TypeError, ValueError) as exc:
        raise MetadataError(path, f"{keyword} holds {value!r}, not a number") from exc


def integer(ds: Dataset, keyword: str, path: Path, default: int | None = None) -> int | None:
    """An integer attribute, ``default`` when absent or empty.

    Raises:
        MetadataError: the value is not an integer.
    """
    value = number(ds, keyword, path)
    if value is None:
        return default
    if value != int(value):
        raise MetadataError(path, f"{keyword} holds {value!r}, not an integer")
    return int(value)


def functional_group(ds: Dataset, frame: int, sequence: str) -> Dataset | None:
    """The item of an enhanced multi-frame functional group macro for one frame.

    Looks in the frame's Per-Frame Functional Groups item first, then in the Shared Functional Groups.

    Args:
        ds: the dataset.
        frame: 0-based frame index.
        sequence: keyword of the macro, e.g. ``"PlanePositionSequence"``.

    Returns:
        The macro's first item, or ``None`` when neither group has it.
    """
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame < len(per_frame):
        item = _first_item(per_frame[frame], sequence)
        if item is not None:
            return item
    shared = ds.get("SharedFunctionalGroupsSequence")
    return _first_item(shared[0], sequence) if shared else None


def _first_item(group: Dataset, sequence: str) -> Dataset | None:
    seq = group.get(sequence)
    return seq[0] if seq else None


@dataclass(frozen=True)
class PixelLayout:
    """How a file's pixel data is laid out (the attributes every image must have).

    Attributes:
        rows: image rows.
        cols: image columns.
        samples: samples per pixel (1 or 3).
        frames: number of frames.
        photometric: photometric interpretation.
        bits_stored: bits stored per sample.
        signed: pixel representation is two's complement.
    """

    rows: int
    cols: int
    samples: int
    frames: int
    photometric: str
    bits_stored: int
    signed: bool


def pixel_layout(ds: Dataset, path: Path) -> PixelLayout:
    """Read and validate the image pixel module attributes.

    Raises:
        MetadataError: Rows, Columns, Bits Allocated or Photometric Interpretation is missing, or a value is
            impossible (zero size, bits stored above bits allocated, unsupported samples per pixel).
    """
    rows = integer(ds, "Rows", path)
    cols = integer(ds, "Columns", path)
    bits_allocated = integer(ds, "BitsAllocated", path)
    photometric = text(ds, "PhotometricInterpretation")
    missing = [
        name
        for name, value in (("Rows", rows), ("Columns", cols), ("BitsAllocated", bits_allocated))
        if not value
    ]
    if photometric is None:
        missing.append("PhotometricInterpretation")
    if missing:
        raise MetadataError(
            path, f"missing or zero image attribute(s) {', '.join(missing)}: the pixels cannot be laid out"
        )
    samples = integer(ds, "SamplesPerPixel", path, 1)
    frames = integer(ds, "NumberOfFrames", path, 1) or 1
    bits_stored = integer(ds, "BitsStored", path, bits_allocated)
    if samples not in (1, 3):
        raise MetadataError(path, f"SamplesPerPixel is {samples}; only 1 (grayscale) and 3 (colour) exist")
    if frames < 1:
        raise MetadataError(path, f"NumberOfFrames is {frames}")
    if not 1 <= bits_stored <= bits_allocated:
        raise MetadataError(path, f"BitsStored {bits_stored} does not fit BitsAllocated {bits_allocated}")
    return PixelLayout(
        rows=rows,
        cols=cols,
        samples=samples,
        frames=frames,
        photometric=photometric.upper(),
        bits_stored=bits_stored,
        signed=integer(ds, "PixelRepresentation", path, 0) == 1,
    )
