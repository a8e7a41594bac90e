"""Stacking 2D frames into a volume (or volume time series) with checked, correct geometry.

Frames are ordered by ImagePositionPatient projected on the slice normal (the cross product of the row
and column cosines), never by InstanceNumber. The checks and their tolerances:

- orientation: every frame's cosines within :data:`ORIENTATION_TOLERANCE` of the first's;
- pixel spacing: equal within a relative :data:`PIXEL_SPACING_TOLERANCE`;
- same position: projected positions closer than :data:`POSITION_TOLERANCE_MM`;
- time points: equal frame counts at every position, told apart by the first of
  :data:`TEMPORAL_KEYS` that differs between the frames at each position (InstanceNumber only when
  NumberOfTemporalPositions declares that many time points);
- uniform spacing: every gap within a relative :data:`SPACING_TOLERANCE` of the typical gap (the median,
  or the smaller gap for three slices); gaps of about k whole spacings are reported as missing slices;
- uniform grid: every slice within :data:`GRID_TOLERANCE_SLICES` of the mean spacing from where the affine
  puts it, so gaps that each pass the 1% check cannot add up to a misplaced slice;
- gantry tilt: every frame origin within :data:`TILT_TOLERANCE_PIXELS` of the smaller pixel spacing from
  the line through the first origin along the normal, so no voxel is misplaced by more than that.

The affine's slice column is the normal times the mean spacing ``(z_last - z_first) / (n - 1)``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medvl.io.dicom_frames import FramePose
from medvl.io.errors import (
    DuplicateSliceError,
    GantryTiltError,
    MissingSliceError,
    MixedMatrixSizeError,
    MixedOrientationError,
    NonUniformSpacingError,
    SeriesGeometryError,
)

ORIENTATION_TOLERANCE = 1e-3
PIXEL_SPACING_TOLERANCE = 1e-3
POSITION_TOLERANCE_MM = 0.01
SPACING_TOLERANCE = 0.01
TILT_TOLERANCE_PIXELS = 0.1
GRID_TOLERANCE_SLICES = 0.1
TEMPORAL_KEYS = (
    "TemporalPositionIdentifier",
    "TemporalPositionIndex",
    "TriggerTime",
    "AcquisitionNumber",
    "AcquisitionTime",
)
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class StackPlan:
    """Where each input frame goes and the geometry of the result.

    Attributes:
        placement: ``(z, t)`` index of each input frame, in input order.
        n_slices: length of the Z axis.
        n_timepoints: length of the T axis (1 without time).
        affine: 4x4 voxel-to-RAS matrix.
        slice_positions_mm: position of each slice along the normal (mm, ascending); ``None`` when unknown.
        frame_times: seconds of each time point from the first, from acquisition or trigger times; ``None``
            when not measurable.
        spacing_known: False when any spacing in the affine is a default.
    """

    placement: list[tuple[int, int]]
    n_slices: int
    n_timepoints: int
    affine: np.ndarray
    slice_positions_mm: list[float] | None
    frame_times: list[float] | None
    spacing_known: bool


def plan_stack(
    frames: Sequence[FramePose],
    path: Path,
    *,
    slice_step_mm: float | None = None,
    declared_timepoints: int | None = None,
    names: Sequence[str] | None = None,
) -> StackPlan:
    """Order frames into ``(Z, T)`` and build the affine, or refuse.

    Args:
        frames: one pose per frame, all of one series or multi-frame object.
        path: the file or folder (named in errors).
        slice_step_mm: thickness to give a single slice's third affine column (SpacingBetweenSlices or
            SliceThickness); 1 mm when ``None``.
        declared_timepoints: NumberOfTemporalPositions, which allows InstanceNumber as the time order.
        names: what to call each frame in errors (its file, and frame number in a multi-frame file);
            ``frame 1``, ``frame 2``... when ``None``.

    Raises:
        SeriesGeometryError: (a subclass naming the problem) the frames cannot form a correct volume.
    """
    names = list(names) if names is not None else [f"frame {k + 1}" for k in range(len(frames))]
    positioned = [f.position is not None for f in frames]
    if any(positioned) and not all(positioned):
        raise SeriesGeometryError(
            path,
            f"some frames have ImagePositionPatient and others do not ({_named(names, positioned.index(False))} "
            f"has none, {_named(names, positioned.index(True))} has one)",
        )
    row, col, pixel_spacing = _common_plane(frames, names, path)
    normal = np.cross(row, col)
    spacing_known = all(f.spacing_known for f in frames)
    if not all(positioned):
        return _unpositioned_plan(len(frames), row, col, normal, pixel_spacing, slice_step_mm, spacing_known)
    positions = np.array([f.position for f in frames], dtype=float)
    heights = positions @ normal
    groups = _group_positions(heights)
    n_timepoints = _count_timepoints(groups, heights, names, path)
    time_index = _time_order(groups, frames, n_timepoints, declared_timepoints, names, path)
    slice_heights = np.array([heights[g].mean() for g in groups])
    _check_spacing(slice_heights, groups, names, path)
    _check_grid(slice_heights, groups, names, path)
    _check_tilt(positions, positions[groups[0][0]], normal, min(pixel_spacing), names, path)
    if len(groups) > 1:
        step = (slice_heights[-1] - slice_heights[0]) / (len(groups) - 1)
    else:
        step = slice_step_mm or 1.0
        spacing_known = spacing_known and (len(frames) == 1 or slice_step_mm is not None)
    placement = [(0, 0)] * len(frames)
    for z, group in enumerate(groups):
        for i in group:
            placement[i] = (z, time_index[i])
    return StackPlan(
        placement=placement,
        n_slices=len(groups),
        n_timepoints=n_timepoints,
        affine=plane_affine(positions[groups[0][0]], row, col, normal * step, pixel_spacing),
        slice_positions_mm=[float(h) for h in slice_heights],
        frame_times=_frame_times(groups, frames, time_index, n_timepoints),
        spacing_known=spacing_known,
    )


def plane_affine(
    origin: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    slice_step: np.ndarray,
    pixel_spacing: tuple[float, float],
) -> np.ndarray:
    """Voxel-to-RAS affine of frames in one plane.

    Args:
        origin: LPS position of the first voxel's centre.
        row: LPS unit vector along a row (the X axis).
        col: LPS unit vector down a column (the Y axis).
        slice_step: LPS vector from one slice to the next (the Z axis).
        pixel_spacing: (distance between rows, distance between columns) in mm.
    """
    lps = np.eye(4)
    lps[:3, 0] = row * pixel_spacing[1]
    lps[:3, 1] = col * pixel_spacing[0]
    lps[:3, 2] = slice_step
    lps[:3, 3] = origin
    return LPS_TO_RAS @ lps


def _unpositioned_plan(
    n_frames: int,
    row: np.ndarray,
    col: np.ndarray,
    normal: np.ndarray,
    pixel_spacing: tuple[float, float],
    slice_step_mm: float | None,
    spacing_known: bool,
) -> StackPlan:
    """Frames without positions: one image, or frames in file order 1 mm apart (nothing says more)."""
    step = (slice_step_mm or 1.0) if n_frames == 1 else 1.0
    return StackPlan(
        placement=[(k, 0) for k in range(n_frames)],
        n_slices=n_frames,
        n_timepoints=1,
        affine=plane_affine(np.zeros(3), row, col, normal * step, pixel_spacing),
        slice_positions_mm=None,
        frame_times=None,
        spacing_known=spacing_known and n_frames == 1,
    )


def _common_plane(
    frames: Sequence[FramePose], names: Sequence[str], path: Path
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    first = frames[0]
    cosines = np.array([np.concatenate([f.row_cosine, f.col_cosine]) for f in frames])
    deviation = np.abs(cosines - cosines[0]).max(axis=1)
    if deviation.max() > ORIENTATION_TOLERANCE:
        k = int(deviation.argmax())
        raise MixedOrientationError(
            path,
            f"frames have different image orientations, e.g. {np.round(cosines[0], 4).tolist()} "
            f"({_named(names, 0)}) and {np.round(cosines[k], 4).tolist()} ({_named(names, k)}): split the "
            "series by orientation (localizers?)",
        )
    spacings = np.array([f.pixel_spacing for f in frames])
    relative = np.abs(spacings / spacings[0] - 1).max(axis=1)
    if relative.max() > PIXEL_SPACING_TOLERANCE:
        k = int(relative.argmax())
        raise MixedMatrixSizeError(
            path,
            f"frames have different pixel spacings: {sorted({tuple(s) for s in spacings.round(4).tolist()})} "
            f"({_named(names, 0)} and {_named(names, k)})",
        )
    return first.row_cosine, first.col_cosine, first.pixel_spacing


def _group_positions(heights: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(heights, kind="stable")
    groups: list[list[int]] = []
    for i in order:
        if groups and heights[i] - heights[groups[-1][0]] <= POSITION_TOLERANCE_MM:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    return [np.array(g) for g in groups]


def _count_timepoints(groups: list[np.ndarray], heights: np.ndarray, names: Sequence[str], path: Path) -> int:
    counts = Counter(len(g) for g in groups)
    most = max(counts.values())
    typical = min(count for count, n in counts.items() if n == most)  # a tie: copies are likelier than losses
    tie = sum(n == most for n in counts.values()) > 1
    over = [g for g in groups if len(g) > typical]
    under = [g for g in groups if len(g) < typical]
    if over:
        what = "duplicate slices" if typical == 1 else "duplicate frames"
        raise DuplicateSliceError(
            path,
            f"{len(over)} slice position(s) hold more frames than the others ({typical}), e.g. "
            f"{_named(names, *over[0])} at {heights[over[0][0]]:.2f} mm along the normal: {what}"
            + (" or an incomplete time series" if tie and typical > 1 else ""),
        )
    if under:
        raise MissingSliceError(
            path,
            f"incomplete time series: {len(under)} slice position(s) have fewer than {typical} frames, e.g. "
            f"{_named(names, *under[0])} at {heights[under[0][0]]:.2f} mm along the normal",
        )
    return typical


def _time_order(
    groups: list[np.ndarray],
    frames: Sequence[FramePose],
    n_timepoints: int,
    declared_timepoints: int | None,
    names: Sequence[str],
    path: Path,
) -> list[int]:
    time_index = [0] * len(frames)
    if n_timepoints == 1:
        return time_index
    echoes = {frames[i].echo_time for i in groups[0]}
    if len(echoes) > 1:
        raise DuplicateSliceError(
            path,
            f"frames at one position differ in EchoTime {sorted(e for e in echoes if e is not None)} "
            f"({_named(names, *groups[0])}): multi-echo series are not stacked; split the series by echo",
        )
    keys = list(TEMPORAL_KEYS)
    if declared_timepoints == n_timepoints:
        keys.append("InstanceNumber")
    for key in keys:
        if _orders_every_position(groups, frames, key, n_timepoints):
            for group in groups:
                ranked = sorted(group, key=lambda i: frames[i].temporal[key])
                for t, i in enumerate(ranked):
                    time_index[i] = t
            return time_index
    raise DuplicateSliceError(
        path,
        f"{n_timepoints} frames at each of {len(groups)} positions and no attribute tells them apart in time "
        f"({', '.join(TEMPORAL_KEYS)}), e.g. {_named(names, *groups[0])}: duplicate slices; remove the copies or "
        "split the series",
    )


def _orders_every_position(groups: list[np.ndarray], frames: Sequence[FramePose], key: str, n: int) -> bool:
    for group in groups:
        values = [frames[i].temporal.get(key) for i in group]
        if any(v is None for v in values) or len(set(values)) != n:
            return False
    return True


def _frame_times(
    groups: list[np.ndarray], frames: Sequence[FramePose], time_index: list[int], n_timepoints: int
) -> list[float] | None:
    if n_timepoints == 1:
        return None
    for key, scale in (("AcquisitionTime", 1.0), ("TriggerTime", 1e-3)):
        values = np.full((len(groups), n_timepoints), np.nan)
        for z, group in enumerate(groups):
            for i in group:
                values[z, time_index[i]] = frames[i].temporal.get(key, np.nan)
        if np.isnan(values).any():
            continue
        mean = values.mean(axis=0) * scale
        if np.all(np.diff(mean) > 0):
            return [float(v) for v in mean - mean[0]]
    return None


def _check_spacing(heights: np.ndarray, groups: list[np.ndarray], names: Sequence[str], path: Path) -> None:
    if len(heights) < 3:
        return
    gaps = np.diff(heights)
    typical = float(np.median(gaps)) if len(gaps) >= 3 else float(gaps.min())
    tolerance = SPACING_TOLERANCE * typical
    bad = np.abs(gaps - typical) > tolerance
    if not bad.any():
        return
    k = int(np.argmax(bad))
    between = f"{_named(names, groups[k][0])} and {_named(names, groups[k + 1][0])}"
    ratios = gaps[bad] / typical
    if np.all(np.abs(ratios - np.round(ratios)) * typical <= tolerance) and np.all(np.round(ratios) >= 2):
        raise MissingSliceError(
            path,
            f"{int(round(ratios.sum() - len(ratios)))} slice(s) missing: gap of {gaps[k]:.3f} mm between "
            f"{heights[k]:.2f} and {heights[k + 1]:.2f} mm ({between}) where the spacing is {typical:.3f} mm",
        )
    raise NonUniformSpacingError(
        path,
        f"slice spacing varies from {gaps.min():.3f} to {gaps.max():.3f} mm (more than "
        f"{SPACING_TOLERANCE:.0%} from {typical:.3f} mm; first between {between}): cannot stack without "
        "resampling",
    )


def _check_grid(heights: np.ndarray, groups: list[np.ndarray], names: Sequence[str], path: Path) -> None:
    """Every slice near its place on the affine's grid ``z_first + k * mean_spacing``."""
    if len(heights) < 3:
        return
    step = (heights[-1] - heights[0]) / (len(heights) - 1)
    off = np.abs(heights - (heights[0] + step * np.arange(len(heights))))
    tolerance = GRID_TOLERANCE_SLICES * abs(step)
    if off.max() <= tolerance:
        return
    k = int(off.argmax())
    raise NonUniformSpacingError(
        path,
        f"slice positions drift from a uniform grid: {_named(names, groups[k][0])} at {heights[k]:.3f} mm lies "
        f"{off[k]:.3f} mm from where {len(heights)} slices {step:.4f} mm apart put it (tolerance "
        f"{tolerance:.3f} mm): cannot stack without resampling",
    )


def _check_tilt(
    positions: np.ndarray,
    origin: np.ndarray,
    normal: np.ndarray,
    pixel_size: float,
    names: Sequence[str],
    path: Path,
) -> None:
    offsets = positions - origin
    along = offsets @ normal
    across = np.linalg.norm(offsets - np.outer(along, normal), axis=1)
    tolerance = TILT_TOLERANCE_PIXELS * pixel_size
    if across.max() <= tolerance:
        return
    k = int(across.argmax())
    angle = np.degrees(np.arctan2(across[k], abs(along[k]))) if along[k] else 90.0
    raise GantryTiltError(
        path,
        f"slice origins leave the image normal by up to {across[k]:.3f} mm at {_named(names, k)} (about "
        f"{angle:.2f} degrees; tolerance {tolerance:.3f} mm): gantry tilt or shifted slices, resample before "
        "stacking",
    )


def _named(names: Sequence[str], *indices: int) -> str:
    """The names of some frames for an error message: at most three, then a count."""
    listed = [names[int(i)] for i in indices]
    return ", ".join(listed[:3]) + (f" and {len(listed) - 3} more" if len(listed) > 3 else "")
