"""Turning one image reference into the fixed-size, normalised slices the training cache stores.

The steps, in order (each also usable on its own, e.g. by a benchmark baseline):

1. **Decode** with :func:`medvl.io.load` (colour is converted to luminance, ITU-R BT.601). A NIfTI/NRRD image
   whose header states no orientation (``geometry_known`` False) is refused
   (:func:`medvl.io.validation.require_known_orientation`): it may be mirrored. DICOM and PNG/JPEG images
   without geometry are used as displayed, with 1 mm assumed for an unknown spacing (step 5).
2. **Orient** (:func:`canonical_slices`): volumes are reoriented to ``LPS`` and become axial slices
   ``(S, rows, cols)``: slices from inferior to superior, anterior at the top, the patient's left on the right
   (the radiological view); each slice keeps its physical z in mm (RAS/LPS superior axis, at the slice
   centre). 2D images are reoriented to ``LPI``: a frontal radiograph has the head at the top and the patient's
   left on the right (``LPS`` would turn it upside down), an axial slice reads as in a volume.
3. **Normalise** to ``[0, 1]`` (:func:`normalise`): CT through a window (:data:`medvl.io.WINDOW_PRESETS`,
   ``lung`` by default); every other modality (X-ray, MR, PET, JPEG/PNG) by robust percentiles of the whole
   image or volume (0.5 and 99.5 by default; estimated from at most ~4M evenly strided values), clipped. A
   constant image is refused (blank or broken export).
4. **Resample depth** (optional, :func:`resample_depth`): to a given slice spacing, linearly.
5. **Fit** into ``size x size`` (:func:`fit_square`): scaled so the longer physical side fills the square
   (pixel spacing honoured; 1 mm assumed where unknown), antialiased bilinear, centred and padded with 0.
6. **Quantise** to uint8 (``round(255 x)``): the window or percentile range is fixed at this point, so float16
   would keep only noise below 1/510 while doubling the bytes read per sample.

Masks go through the same geometry with nearest-neighbour sampling and are stored as uint8 labels (a 0/255
binary mask becomes 0/1). A mask whose file knows its geometry (NIfTI, DICOM) must match the image's after
orientation; a PNG/JPEG mask (no geometry) is taken to lie on the image's stored pixel grid.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from medvl.io import WINDOW_PRESETS, ImageRecord, apply_window, load, reorient
from medvl.io.errors import UnsupportedLayoutError
from medvl.io.validation import require_known_orientation

VOLUME_CODE = "LPS"
PLANE_CODE = "LPI"
LUMINANCE = np.array([0.299, 0.587, 0.114], dtype=np.float32)
PERCENTILE_SAMPLE = 1 << 22
"""Percentiles are estimated from at most about this many evenly strided values."""
GEOMETRY_TOLERANCE_MM = 0.01


@dataclass(frozen=True)
class PrepSettings:
    """How images are prepared; part of the cache key.

    Attributes:
        size: side of the square output in pixels.
        ct_window: a :data:`medvl.io.WINDOW_PRESETS` name used for CT.
        slice_mm: resample volumes to this slice spacing (None keeps the native slices).
        percentiles: low and high percentile mapped to 0 and 1 for non-CT images.
    """

    size: int = 224
    ct_window: str = "lung"
    slice_mm: float | None = None
    percentiles: tuple[float, float] = (0.5, 99.5)

    def __post_init__(self) -> None:
        if not 8 <= self.size <= 4096:
            raise ValueError(f"size {self.size}: choose 8 to 4096 pixels")
        if self.ct_window not in WINDOW_PRESETS:
            raise ValueError(f"CT window '{self.ct_window}' is not one of {sorted(WINDOW_PRESETS)}")
        if self.slice_mm is not None and not self.slice_mm > 0:
            raise ValueError(f"slice spacing {self.slice_mm} mm must be positive")
        low, high = self.percentiles
        if not 0 <= low < high <= 100:
            raise ValueError(f"percentiles {self.percentiles}: need 0 <= low < high <= 100")

    def as_dict(self) -> dict:
        """JSON-ready settings."""
        return {**asdict(self), "percentiles": list(self.percentiles)}

    @classmethod
    def from_dict(cls, values: dict) -> PrepSettings:
        """Settings from :meth:`as_dict` output."""
        return cls(**{**values, "percentiles": tuple(values["percentiles"])})


@dataclass
class Slices:
    """An image as oriented slices: ``pixels`` ``(S, rows, cols)`` float32, ``z_mm`` ``(S,)``, spacing in mm
    (``row_mm``/``col_mm`` NaN when the file does not know it, ``slice_mm`` NaN for a single image)."""

    pixels: np.ndarray
    z_mm: np.ndarray
    row_mm: float
    col_mm: float
    slice_mm: float


@dataclass
class Prepared:
    """One image ready for the cache: uint8 ``pixels`` ``(S, size, size)``, slice ``z_mm``, output spacing
    ``(row_mm, col_mm, slice_mm)``, the image's ``content_box`` ``(top, left, bottom, right)`` inside the
    padded square, and the aligned uint8 ``mask`` (or None)."""

    pixels: np.ndarray
    z_mm: np.ndarray
    spacing: tuple[float, float, float]
    content_box: tuple[int, int, int, int]
    mask: np.ndarray | None = None


def orient(record: ImageRecord) -> ImageRecord:
    """The record reoriented to ``LPS`` (volume) or ``LPI`` (2D image); see the module docstring.

    Raises:
        UnsupportedLayoutError: a time series (4-D) record.
    """
    if record.n_timepoints > 1:
        raise UnsupportedLayoutError(record.source, "a time series (4-D); the cache stores one volume per image")
    return reorient(record, VOLUME_CODE if record.is_volume else PLANE_CODE)


def canonical_slices(record: ImageRecord) -> Slices:
    """The record oriented (:func:`orient`) as slices ``(S, rows, cols)`` with their z positions.

    Raises:
        UnsupportedLayoutError: a time series (4-D) record.
    """
    volume = record.is_volume
    oriented = orient(record)
    array = oriented.array
    if oriented.channels == 3:
        array = array @ LUMINANCE
    pixels = np.ascontiguousarray(array.T if not volume else array.transpose(2, 1, 0), dtype=np.float32)
    if not volume:
        pixels = pixels[None]
    spacing = oriented.spacing
    known = record.metadata.get("spacing_known", True)
    row_mm, col_mm = (float(spacing[1]), float(spacing[0])) if known else (math.nan, math.nan)
    if volume:
        depth, rows, cols = pixels.shape
        centres = np.stack([np.full(depth, (cols - 1) / 2), np.full(depth, (rows - 1) / 2), np.arange(depth),
                            np.ones(depth)])
        z_mm = (oriented.affine @ centres)[2].astype(np.float32)
        return Slices(pixels, z_mm, row_mm, col_mm, float(spacing[2]))
    return Slices(pixels, np.zeros(1, np.float32), row_mm, col_mm, math.nan)


def normalise(pixels: np.ndarray, modality: str, settings: PrepSettings) -> np.ndarray:
    """Values mapped to ``[0, 1]`` by the per-modality rule (CT window, else robust percentiles).

    Raises:
        ValueError: a non-CT image whose percentile range is empty (constant image).
    """
    if modality == "CT":
        center, width = WINDOW_PRESETS[settings.ct_window]
        return np.stack([apply_window(plane, center, width) for plane in pixels])  # bounded float64 scratch
    flat = pixels.reshape(-1)
    sample = flat[:: max(1, flat.size // PERCENTILE_SAMPLE)]
    low, high = np.percentile(sample, settings.percentiles)
    if not high > low:
        raise ValueError(f"image is constant between the {settings.percentiles} percentiles (value {low:g})")
    return np.clip((pixels - low) / (high - low), 0.0, 1.0).astype(np.float32)


def resample_depth(pixels: np.ndarray, z_mm: np.ndarray, slice_mm: float, *, nearest: bool = False
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Slices resampled to ``slice_mm`` spacing over the same z range (linear, or nearest for masks)."""
    if len(z_mm) < 2:
        return pixels, z_mm
    step = float(z_mm[1] - z_mm[0])
    count = int(math.floor(abs(float(z_mm[-1] - z_mm[0])) / slice_mm + 1e-6)) + 1
    z_new = (z_mm[0] + np.sign(step) * slice_mm * np.arange(count)).astype(np.float32)
    position = (z_new - z_mm[0]) / step
    if nearest:
        return pixels[np.clip(np.rint(position).astype(int), 0, len(z_mm) - 1)], z_new
    lower = np.clip(np.floor(position).astype(int), 0, len(z_mm) - 1)
    upper = np.clip(lower + 1, 0, len(z_mm) - 1)
    weight = (position - lower).astype(np.float32)[:, None, None]
    return (1 - weight) * pixels[lower] + weight * pixels[upper], z_new


def fit_square(pixels: np.ndarray, row_mm: float, col_mm: float, size: int, *, nearest: bool = False
               ) -> tuple[np.ndarray, tuple[int, int, int, int], float]:
    """Scale ``(S, rows, cols)`` so the longer physical side is ``size`` pixels, centre it, pad with 0.

    Returns:
        The ``(S, size, size)`` float32 array, the content box ``(top, left, bottom, right)`` and the output
        pixel size in mm (per source mm; 1 mm is assumed for an unknown spacing).
    """
    _, rows, cols = pixels.shape
    row_mm = 1.0 if math.isnan(row_mm) else row_mm
    col_mm = 1.0 if math.isnan(col_mm) else col_mm
    out_mm = max(rows * row_mm, cols * col_mm) / size
    new_rows = min(size, max(1, round(rows * row_mm / out_mm)))
    new_cols = min(size, max(1, round(cols * col_mm / out_mm)))
    tensor = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))[None]
    if nearest:
        resized = F.interpolate(tensor, size=(new_rows, new_cols), mode="nearest-exact")
    else:
        resized = F.interpolate(tensor, size=(new_rows, new_cols), mode="bilinear", antialias=True,
                                align_corners=False).clamp_(0.0, 1.0)
    top, left = (size - new_rows) // 2, (size - new_cols) // 2
    out = np.zeros((pixels.shape[0], size, size), dtype=np.float32)
    out[:, top:top + new_rows, left:left + new_cols] = resized[0].numpy()
    return out, (top, left, top + new_rows, left + new_cols), out_mm


def quantise(values: np.ndarray) -> np.ndarray:
    """``[0, 1]`` floats to uint8 levels (``round(255 x)``)."""
    return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def mask_labels(pixels: np.ndarray, source: str) -> np.ndarray:
    """Mask values as uint8 labels; a 0/255 binary mask becomes 0/1.

    Raises:
        ValueError: non-integer values or labels outside 0..255.
    """
    values = np.unique(pixels)
    if np.any(values != np.rint(values)) or values.min() < 0 or values.max() > 255:
        raise ValueError(f"{source}: mask values {values[:8].tolist()}... are not integer labels 0..255")
    if set(values.tolist()) <= {0.0, 255.0}:
        pixels = pixels / 255.0
    return np.rint(pixels).astype(np.uint8)


def prepare(ref: dict, settings: PrepSettings) -> Prepared:
    """Decode, orient, normalise, resample and fit one manifest image reference (and its mask).

    ``ref`` is an entry of the manifest's ``images`` column with an absolute ``path`` (and ``mask``).
    The manifest's modality decides the intensity rule when the file does not say (``OT``).

    Raises:
        MedvlIOError: the image or mask cannot be read, or the image's orientation is unknown.
        ValueError: a constant image, a mask that is not aligned with its image or not a label map.
    """
    return prepare_record(load_for_training(ref), settings, ref.get("modality", "OT"), ref.get("mask") or None)


def load_for_training(ref: dict) -> ImageRecord:
    """Decode a manifest image reference and hold it to the training orientation policy (a NIfTI / NRRD image
    whose header states no orientation is refused: it may be mirrored).

    Raises:
        MedvlIOError: the image cannot be read, or its orientation is unknown where it must be known.
    """
    record = load(ref["path"], series_uid=ref.get("series_uid") or None)
    require_known_orientation(record)
    return record


def prepare_record(record: ImageRecord, settings: PrepSettings, modality: str = "OT", mask: str | None = None) -> Prepared:
    """:func:`prepare` of an image already loaded (``modality`` applies when the record does not say; ``mask`` is
    the path of its label map, if any).

    Raises:
        MedvlIOError: the mask cannot be read.
        ValueError: a constant image, a mask that is not aligned with its image or not a label map.
    """
    modality = record.modality if record.modality not in ("", "OT") else modality
    slices = canonical_slices(record)
    pixels = normalise(slices.pixels, modality, settings)
    z_mm = slices.z_mm
    if settings.slice_mm is not None and len(z_mm) > 1:
        pixels, z_mm = resample_depth(pixels, slices.z_mm, settings.slice_mm)
    fitted, box, out_mm = fit_square(pixels, slices.row_mm, slices.col_mm, settings.size)
    known = not math.isnan(slices.row_mm)
    slice_mm = settings.slice_mm if settings.slice_mm is not None and len(z_mm) > 1 else slices.slice_mm
    spacing = (out_mm if known else math.nan, out_mm if known else math.nan, slice_mm)
    prepared_mask = _prepared_mask(mask, record, slices, settings) if mask else None
    return Prepared(quantise(fitted), z_mm.astype(np.float32), spacing, box, prepared_mask)


def _prepared_mask(path: str, image: ImageRecord, slices: Slices, settings: PrepSettings) -> np.ndarray:
    mask = load(path)
    if mask.spatial_shape != image.spatial_shape:
        raise ValueError(f"{path}: mask shape {mask.spatial_shape} differs from its image's {image.spatial_shape}")
    if mask.metadata.get("spacing_known", True):
        difference = np.abs(orient(mask).affine - orient(image).affine).max()
        if difference > GEOMETRY_TOLERANCE_MM:
            raise ValueError(f"{path}: mask geometry differs from its image's (affines differ by {difference:.3g} mm)")
    else:
        mask = replace(mask, affine=image.affine)
    pixels = mask_labels(canonical_slices(mask).pixels, str(path)).astype(np.float32)
    if settings.slice_mm is not None and len(slices.z_mm) > 1:
        pixels, _ = resample_depth(pixels, slices.z_mm, settings.slice_mm, nearest=True)
    fitted, _, _ = fit_square(pixels, slices.row_mm, slices.col_mm, settings.size, nearest=True)
    return np.rint(fitted).astype(np.uint8)
