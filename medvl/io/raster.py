"""PNG and JPEG to an image record, with Pillow.

Pixel values are kept as stored (8- or 16-bit grayscale, RGB with ``channels == 3``); the EXIF orientation
tag, when present, is applied. The geometry is nominal: 1 mm pixels (``spacing_known`` False) in the
default projection orientation of :mod:`medvl.io.dicom_frames` (rows towards the patient's left, columns
towards the feet), and ``geometry_known`` is False. Transparent pixels are refused (an opaque alpha channel
is dropped). The decoded size is checked against :mod:`medvl.io.limits` before the pixels are decoded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from medvl.io.dicom_frames import DEFAULT_COL_COSINE, DEFAULT_ROW_COSINE
from medvl.io.errors import CorruptFileError, CorruptPixelDataError, UnsupportedLayoutError
from medvl.io.limits import DecodedSizeError, check_decoded_size
from medvl.io.metadata import empty_metadata
from medvl.io.record import ImageRecord
from medvl.io.stacking import plane_affine

_GRAY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "F")


def load_raster(path: Path) -> ImageRecord:
    """Load a PNG or JPEG file.

    Raises:
        CorruptFileError: Pillow cannot identify the file.
        CorruptPixelDataError: the image data is truncated or corrupt.
        UnsupportedLayoutError: the image has transparent pixels or several frames (animated PNG).
        DecodedSizeError: its pixels exceed the decoded-size limit (or Pillow's decompression-bomb limit).
    """
    try:
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) > 1:
                raise UnsupportedLayoutError(
                    path, f"{image.n_frames} frames (animated image); medvl reads one"
                )
            channels = 1 if image.mode in (*_GRAY_MODES, "LA") else 3  # palette and colour images become RGB
            check_decoded_size(path, image.width * image.height * channels * 4)
            image.load()
            pixels = _pixels(ImageOps.exif_transpose(image), path)
    except Image.DecompressionBombError as exc:
        raise DecodedSizeError(path, f"{exc} (Pillow's decompression-bomb limit)") from exc
    except (UnidentifiedImageError, SyntaxError) as exc:
        raise CorruptFileError(path, f"image header cannot be read: {exc}") from exc
    except OSError as exc:
        raise CorruptPixelDataError(path, f"image data cannot be decoded (truncated?): {exc}") from exc
    channels = 3 if pixels.ndim == 3 else 1
    bits = 16 if pixels.dtype == np.uint16 else 8 * pixels.dtype.itemsize
    normal = np.cross(DEFAULT_ROW_COSINE, DEFAULT_COL_COSINE)
    return ImageRecord(
        array=np.asarray(pixels.swapaxes(0, 1), dtype=np.float32),
        affine=plane_affine(np.zeros(3), DEFAULT_ROW_COSINE, DEFAULT_COL_COSINE, normal, (1.0, 1.0)),
        modality="OT",
        photometric="RGB" if channels == 3 else "MONOCHROME2",
        metadata=empty_metadata(spacing_known=False, geometry_known=False, bits_stored=bits),
        source=str(path),
        channels=channels,
    )


def _pixels(image: Image.Image, path: Path) -> np.ndarray:
    """``(rows, cols)`` or ``(rows, cols, 3)`` values of a Pillow image."""
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA") if image.mode not in ("LA", "RGBA") else image
        alpha = np.asarray(rgba.getchannel("A"))
        if alpha.min() < 255:
            raise UnsupportedLayoutError(path, "transparent pixels: an alpha channel cannot be represented")
        image = image.convert("L" if image.mode == "LA" else "RGB")
    if image.mode in _GRAY_MODES:
        return np.asarray(image)
    return np.asarray(image.convert("RGB"))
