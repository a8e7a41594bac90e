"""Decoding a DICOM file's pixel data into physical values.

Order of operations: check that every compressed frame is complete (:mod:`medvl.io.dicom_codestream`),
decode (any transfer syntax pydicom + pylibjpeg handle; YBR colour converted to RGB; a decoder warning other
than :data:`_HARMLESS_WARNINGS` refuses the file), palette colour to RGB, modality LUT or rescale
slope/intercept (per frame for enhanced objects, dose grid scaling for RT dose; values beyond float32
refused), MONOCHROME1 inversion, Siemens mosaic unpacking.

MONOCHROME1 is inverted within its own range: with ``lo``/``hi`` the rescaled smallest and largest
storable values, ``value -> lo + hi - value``, so bright still means dense and the values stay in range.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder, pixel_array

from medvl.io.dicom_codestream import check_frames_complete
from medvl.io.dicom_file import PixelLayout, functional_group, number, transfer_syntax
from medvl.io.errors import CorruptPixelDataError, MetadataError, UnsupportedTransferSyntaxError
from medvl.io.limits import DecodedSizeError
from medvl.io.siemens_mosaic import is_mosaic, mosaic_layout, split_mosaic

_HARMLESS_WARNINGS = (
    "bytes of excess padding",
    "non-conformant padding",
    "'Photometric Interpretation' value is",
    "'Number of Frames' is invalid, assuming 1 frame",
)
"""Decoder warnings that leave the pixels right (padding dropped, colour space taken from the codestream, a
NumberOfFrames of 0 read as 1); any other warning refuses the file."""


@dataclass(frozen=True)
class DecodedPixels:
    """Physical pixel values of one file.

    Attributes:
        frames: ``(frames, rows, cols)`` or ``(frames, rows, cols, 3)`` float32 (mosaic tiles as frames).
        inversion: for MONOCHROME1 the constant ``lo + hi`` the values were reflected with, else ``None``.
        rescale: (slope, intercept) of the first frame; ``None`` for colour, float data or a modality LUT.
    """

    frames: np.ndarray
    inversion: float | None
    rescale: tuple[float, float] | None


def decode_pixels(ds: Dataset, path: Path, layout: PixelLayout) -> DecodedPixels:
    """Decode and convert one file's pixels.

    Raises:
        UnsupportedTransferSyntaxError: no installed decoder handles the transfer syntax.
        CorruptPixelDataError: a compressed frame is cut short, decoding fails or warns, or the data is
            shorter than Rows x Columns x Frames.
        DecodedSizeError: memory runs out while decoding.
        MetadataError: a rescale slope of zero or one taking values beyond float32, or a palette without its
            lookup tables.
    """
    stored = _decode(ds, path, layout)
    if layout.photometric == "PALETTE COLOR":
        return DecodedPixels(_palette_to_rgb(stored, ds, path), None, None)
    if layout.samples == 3:
        return DecodedPixels(stored.astype(np.float32), None, None)
    values, rescale, transform = _modality(stored, ds, path)
    inversion = None
    if layout.photometric == "MONOCHROME1":
        lo, hi = transform(_storable_range(stored, layout))
        inversion = float(lo + hi)
        np.subtract(inversion, values, out=values)
    if is_mosaic(ds):
        n_tiles, _ = mosaic_layout(ds, path, layout.rows, layout.cols)
        values = split_mosaic(values[0], n_tiles)
    return DecodedPixels(values, inversion, rescale)


def _decode(ds: Dataset, path: Path, layout: PixelLayout) -> np.ndarray:
    syntax = transfer_syntax(ds, path)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise UnsupportedTransferSyntaxError(
            path, f"no decoder for transfer syntax {syntax.name} ({syntax})"
        ) from exc
    if not decoder.is_available:
        raise UnsupportedTransferSyntaxError(
            path,
            f"transfer syntax {syntax.name} needs a decoder plugin that is not installed (pylibjpeg-*, gdcm)",
        )
    check_frames_complete(ds, path, syntax, layout.frames)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            stored = pixel_array(ds)
        except MemoryError as exc:
            raise DecodedSizeError(path, f"not enough memory to decode {layout.frames} frame(s)") from exc
        except Exception as exc:  # decoders raise ValueError, RuntimeError, OSError... on bad data
            raise CorruptPixelDataError(
                path, f"pixel data cannot be decoded ({syntax.name}): {_reason(exc)}"
            ) from exc
    suspicious = [str(w.message) for w in caught if issubclass(w.category, UserWarning)  # not deprecations
                  and not any(h in str(w.message) for h in _HARMLESS_WARNINGS)]  # fmt: skip
    if suspicious:
        raise CorruptPixelDataError(
            path, f"the {syntax.name} decoder warns: {' '.join(suspicious[0].split())}"
        )
    expected = (layout.rows, layout.cols) + ((3,) if layout.samples == 3 else ())
    if stored.shape[-len(expected) :] != expected or stored.size != layout.frames * np.prod(expected):
        raise CorruptPixelDataError(
            path, f"decoded pixels have shape {stored.shape}, expected {layout.frames} frame(s) of {expected}"
        )
    return stored.reshape((layout.frames, *expected))


def _reason(exc: BaseException) -> str:
    """An exception's whole message on one line (decoders list each plugin's failure on its own line)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _palette_to_rgb(stored: np.ndarray, ds: Dataset, path: Path) -> np.ndarray:
    try:
        return apply_color_lut(stored, ds).astype(np.float32)
    except Exception as exc:
        raise MetadataError(
            path, f"PALETTE COLOR image whose lookup tables cannot be applied: {exc}"
        ) from exc


def _modality(stored: np.ndarray, ds: Dataset, path: Path):
    """Physical values, the first frame's (slope, intercept), and the transform of frame 0 for extremes."""
    if "ModalityLUTSequence" in ds:
        values = apply_modality_lut(stored, ds).astype(np.float32)
        return values, None, lambda x: apply_modality_lut(np.asarray(x), ds).astype(float)
    if stored.dtype.kind == "f":
        return stored.astype(np.float32), None, lambda x: np.asarray(x, dtype=float)
    params = [_rescale(ds, path, f) for f in range(stored.shape[0])]
    values = np.empty(stored.shape, dtype=np.float32)
    for f, (slope, intercept) in enumerate(params):
        try:
            with np.errstate(over="raise"):
                np.multiply(stored[f], np.float32(slope), out=values[f], casting="unsafe")
                values[f] += np.float32(intercept)
        except FloatingPointError as exc:
            raise MetadataError(
                path,
                f"rescale slope {slope:g} / intercept {intercept:g} of frame {f + 1} take pixel values "
                "beyond the float32 range (about 3.4e38): they would all become infinite",
            ) from exc
    slope0, intercept0 = params[0]
    return values, params[0], lambda x: np.asarray(x, dtype=float) * slope0 + intercept0


def _rescale(ds: Dataset, path: Path, frame: int) -> tuple[float, float]:
    item = functional_group(ds, frame, "PixelValueTransformationSequence")
    source = item if item is not None and "RescaleSlope" in item else ds
    slope = number(source, "RescaleSlope", path)
    intercept = number(source, "RescaleIntercept", path, 0.0)
    if slope is None:
        slope = number(ds, "DoseGridScaling", path, 1.0)
    if slope == 0 or not np.isfinite(slope) or not np.isfinite(intercept):
        raise MetadataError(
            path, f"rescale slope {slope} / intercept {intercept} cannot map pixels to values"
        )
    return slope, intercept


def _storable_range(stored: np.ndarray, layout: PixelLayout) -> np.ndarray:
    if stored.dtype.kind == "f":
        return np.array([stored.min(), stored.max()], dtype=float)
    bits = layout.bits_stored
    if layout.signed:
        return np.array([-(2 ** (bits - 1)), 2 ** (bits - 1) - 1], dtype=float)
    return np.array([0, 2**bits - 1], dtype=float)
