"""Turning one image reference into the fixed-size, normalised slices the training cache stores.

The steps, in order (each also usable on its own, e.g. by a benchmark baseline):

1. **Decode** with :func:`medvl.io.load` (colour is converted to luminance, ITU-R BT.601). A NIfTI/NRRD image
   whose header states no orientation (``geometry_known`` False) is refused
   (:func:`medvl.io.validation.require_known_orientation`): it may be mirrored. DICOM and PNG/JPEG images
   without geometry are used as displayed, with 1 mm assumed for an unknown spacing (step 4).
2. **Orient** (:func:`canonical_slices`): volumes are reoriented to ``LPS`` and become axial slices
   ``(S, rows, cols)``: slices from inferior to superior, anterior at the top, the patient's left on the right
   (the radiological view); each slice keeps its physical z in mm (RAS/LPS superior axis, at the slice
   centre). 2D images are reoriented to ``LPI``: a frontal radiograph has the head at the top and the patient's
   left on the right (``LPS`` would turn it upside down), an axial slice reads as in a volume.
3. **Normalise** to ``[0, 1]`` (:func:`normalise`): CT through a window (:data:`medvl.io.WINDOW_PRESETS`,
   ``lung`` by default); every other modality (X-ray, MR, PET, JPEG/PNG) by robust percentiles of the whole
   image or volume (0.5 and 99.5 by default; estimated from at most ~4M evenly strided values), clipped. A
   constant image is refused (blank or broken export).
4. **Crop** a CT to the body in plane (optional, :func:`crop_to_body`), then **fit** into ``size x size`` (:func:`fit_square`): scaled so the longer physical side fills the square
   (pixel spacing honoured; 1 mm assumed where unknown), antialiased bilinear, centred and padded with 0.
5. **Resample depth** (optional, :func:`resample_depth`): to a given slice spacing, linearly, from the first
   slice on. Done after the fit, on the small squares: both steps are linear (nearest for a mask) along
   different axes, so their order changes the values only by float rounding.
6. **Quantise** to uint8 (``round(255 x)``): the window or percentile range is fixed at this point, so float16
   would keep only noise below 1/510 while doubling the bytes read per sample.

Steps 4 and 5 are MONAI dictionary transforms applied to the image and its mask together (keys ``"image"``,
``"mask"``; :func:`fit_squares`; only the image's antialiased scaling is torch's own): the mask goes through the
same geometry with nearest-neighbour sampling and is stored as uint8 labels (a 0/255 binary mask becomes 0/1). A
mask whose file knows its geometry (NIfTI, DICOM) must match the image's after orientation; a PNG/JPEG mask (no
geometry) is taken to lie on the image's stored pixel grid.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import partial

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
IMAGE, MASK = "image", "mask"
"""Keys of the image and its mask in the geometry transforms."""
BODY_HU = -500.0
"""CT voxels above this are the body (soft tissue, fat, bone; lung inside it), below it air."""
BODY_MARGIN_MM = 5.0


@dataclass(frozen=True)
class PrepSettings:
    """How images are prepared; part of the cache key.

    Attributes:
        size: side of the square output in pixels.
        ct_window: a :data:`medvl.io.WINDOW_PRESETS` name used for CT.
        slice_mm: resample volumes to this slice spacing (None keeps the native slices).
        percentiles: low and high percentile mapped to 0 and 1 for non-CT images.
        crop_body: crop CT in plane to the body (:func:`crop_to_body`) before the fit, so its pixels go to the
            patient rather than to the air around them.
    """

    size: int = 224
    ct_window: str = "lung"
    slice_mm: float | None = None
    percentiles: tuple[float, float] = (0.5, 99.5)
    crop_body: bool = False

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
        """JSON-ready settings (``crop_body`` only when on, so caches made before it existed keep their key)."""
        values = {**asdict(self), "percentiles": list(self.percentiles)}
        if not self.crop_body:
            del values["crop_body"]
        return values

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


def crop_to_body(pixels: dict[str, np.ndarray], slices: Slices) -> dict[str, np.ndarray]:
    """The ``"image"`` (and ``"mask"``) cropped in plane to the box holding every voxel of the body (HU above
    :data:`BODY_HU` on any slice) plus :data:`BODY_MARGIN_MM`, the same box for all slices; unchanged when no
    voxel is body."""
    from monai.transforms import CropForegroundd

    if not np.any(slices.pixels > BODY_HU):
        return pixels
    margin = [math.ceil(BODY_MARGIN_MM / (1.0 if math.isnan(mm) else mm)) for mm in (slices.row_mm, slices.col_mm)]
    crop = CropForegroundd((IMAGE, MASK), source_key="body", select_fn=lambda hu: hu > BODY_HU, margin=margin,
                           allow_missing_keys=True)  # fmt: skip
    cropped = crop({"body": torch.from_numpy(slices.pixels)} | {k: torch.from_numpy(v) for k, v in pixels.items()})
    return {key: np.asarray(cropped[key]) for key in pixels}


def square_box(shape: tuple[int, int], row_mm: float, col_mm: float, size: int
               ) -> tuple[tuple[int, int, int, int], float]:
    """Where a ``(rows, cols)`` image lands when its longer physical side fills ``size`` pixels, centred.

    Returns:
        The content box ``(top, left, bottom, right)`` and the output pixel size in mm (per source mm; 1 mm is
        assumed for an unknown spacing).
    """
    rows, cols = shape
    row_mm = 1.0 if math.isnan(row_mm) else row_mm
    col_mm = 1.0 if math.isnan(col_mm) else col_mm
    out_mm = max(rows * row_mm, cols * col_mm) / size
    new_rows = min(size, max(1, round(rows * row_mm / out_mm)))
    new_cols = min(size, max(1, round(cols * col_mm / out_mm)))
    top, left = (size - new_rows) // 2, (size - new_cols) // 2  # as SpatialPad's "symmetric" method pads
    return (top, left, top + new_rows, left + new_cols), out_mm


def fit_squares(pixels: dict[str, np.ndarray], row_mm: float, col_mm: float, size: int
                ) -> tuple[dict[str, np.ndarray], tuple[int, int, int, int], float]:
    """:func:`fit_square` of an ``"image"`` (antialiased bilinear) and its ``"mask"`` (nearest) together."""
    # MONAI is imported where used: it takes seconds, which `medvl ingest`, the app and inference need not wait
    from monai.transforms import Compose, Lambdad, Resized, SpatialPadd

    box, out_mm = square_box(next(iter(pixels.values())).shape[1:], row_mm, col_mm, size)
    shape = (box[2] - box[0], box[3] - box[1])
    fit = Compose([
        Lambdad(IMAGE, partial(_antialiased_resize, shape=shape), allow_missing_keys=True),
        Resized(MASK, shape, mode="nearest-exact", allow_missing_keys=True),
        SpatialPadd((IMAGE, MASK), (size, size), method="symmetric", allow_missing_keys=True),
    ])
    fitted = fit({key: torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)) for key, value in pixels.items()})
    return {key: value.numpy() for key, value in fitted.items()}, box, out_mm


def fit_square(pixels: np.ndarray, row_mm: float, col_mm: float, size: int, *, nearest: bool = False
               ) -> tuple[np.ndarray, tuple[int, int, int, int], float]:
    """Scale ``(S, rows, cols)`` so the longer physical side is ``size`` pixels, centre it, pad with 0.

    Returns:
        The ``(S, size, size)`` float32 array (antialiased bilinear, or nearest for a mask), the content box
        ``(top, left, bottom, right)`` and the output pixel size in mm (see :func:`square_box`).
    """
    key = MASK if nearest else IMAGE
    fitted, box, out_mm = fit_squares({key: pixels}, row_mm, col_mm, size)
    return fitted[key], box, out_mm


def _antialiased_resize(image: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    # Kept rather than MONAI's Resized(anti_aliasing=True): that blurs with a zero-padded Gaussian before sampling
    # bilinearly, which differs from this (triangle) filter by up to 37 uint8 levels on the real radiographs, CT and
    # MR, worst at the borders it darkens.
    return F.interpolate(image[None], size=shape, mode="bilinear", antialias=True, align_corners=False)[0].clamp_(0.0, 1.0)


def resample_depth(pixels: dict[str, np.ndarray], z_mm: np.ndarray, slice_mm: float
                   ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Slices ``(S, rows, cols)`` resampled to ``slice_mm`` spacing over the same z range, from the first slice
    on: the ``"image"`` linearly, its ``"mask"`` by nearest slice."""
    from monai.data import MetaTensor
    from monai.transforms import Compose, Spacingd, SpatialCropd

    if len(z_mm) < 2:
        return pixels, z_mm
    step = float(z_mm[1] - z_mm[0])
    count = int(math.floor(abs(float(z_mm[-1] - z_mm[0])) / slice_mm + 1e-6)) + 1
    resample = Compose([  # an identity affine: the spacing is given in slices
        Spacingd((IMAGE, MASK), (slice_mm / abs(step), 1.0, 1.0), mode=("bilinear", "nearest"),
                 allow_missing_keys=True),
        # Spacingd rounds the slice count, which can add one beyond the last native slice: keep the z range
        SpatialCropd((IMAGE, MASK), roi_slices=(slice(0, count),), allow_missing_keys=True),
    ])
    resampled = resample({key: MetaTensor(torch.from_numpy(value)[None]) for key, value in pixels.items()})
    z_new = (z_mm[0] + np.sign(step) * slice_mm * np.arange(count)).astype(np.float32)
    return {key: value[0].numpy() for key, value in resampled.items()}, z_new


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
    pixels = {IMAGE: normalise(slices.pixels, modality, settings)}
    if mask:
        pixels[MASK] = _mask_pixels(mask, record)
    if settings.crop_body and modality == "CT":
        pixels = crop_to_body(pixels, slices)
    fitted, box, out_mm = fit_squares(pixels, slices.row_mm, slices.col_mm, settings.size)
    z_mm = slices.z_mm
    if settings.slice_mm is not None:
        fitted, z_mm = resample_depth(fitted, z_mm, settings.slice_mm)
    known = not math.isnan(slices.row_mm)
    slice_mm = settings.slice_mm if settings.slice_mm is not None and len(z_mm) > 1 else slices.slice_mm
    spacing = (out_mm if known else math.nan, out_mm if known else math.nan, slice_mm)
    prepared_mask = np.rint(fitted[MASK]).astype(np.uint8) if mask else None
    return Prepared(quantise(fitted[IMAGE]), z_mm.astype(np.float32), spacing, box, prepared_mask)


def _mask_pixels(path: str, image: ImageRecord) -> np.ndarray:
    """The mask's oriented slices as float32 labels, once checked to lie on its image's grid."""
    mask = load(path)
    if mask.spatial_shape != image.spatial_shape:
        raise ValueError(f"{path}: mask shape {mask.spatial_shape} differs from its image's {image.spatial_shape}")
    if mask.metadata.get("spacing_known", True):
        difference = np.abs(orient(mask).affine - orient(image).affine).max()
        if difference > GEOMETRY_TOLERANCE_MM:
            raise ValueError(f"{path}: mask geometry differs from its image's (affines differ by {difference:.3g} mm)")
    else:
        mask = replace(mask, affine=image.affine)
    return mask_labels(canonical_slices(mask).pixels, str(path)).astype(np.float32)
