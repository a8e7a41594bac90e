"""DICOM files and folders to image records: series discovery, stacking, decoding.

A folder is searched recursively, following symbolic links (each real folder is visited once, so link
loops end); files that are not DICOM (text, NIfTI, hidden files) and DICOM objects without pixel data (SR,
RT plan, DICOMDIR) are skipped, a DICOM file that cannot be parsed is refused. Series are told apart by
SeriesInstanceUID. The decoded size of the whole series is checked against the limit of
:mod:`medvl.io.limits` before any pixel is decoded.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from tqdm import tqdm

from medvl.io.dicom_file import (
    PixelLayout,
    expects_pixels,
    functional_group,
    has_pixels,
    integer,
    looks_like_dicom,
    number,
    pixel_layout,
    read_header,
    require_pixels,
    text,
    transfer_syntax,
)
from medvl.io.dicom_frames import FramePose, frame_poses
from medvl.io.dicom_metadata import dicom_metadata
from medvl.io.dicom_pixels import DecodedPixels, decode_pixels
from medvl.io.errors import (
    DuplicateSliceError,
    MetadataError,
    MixedMatrixSizeError,
    MultipleSeriesError,
    NoPixelDataError,
    NotAnImageError,
    SeriesGeometryError,
    UnsupportedLayoutError,
)
from medvl.io.formats import read_head
from medvl.io.limits import check_decoded_size
from medvl.io.record import ImageRecord
from medvl.io.stacking import StackPlan, plan_stack


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM series found in a folder.

    Attributes:
        uid: SeriesInstanceUID (``""`` for files without one).
        description: SeriesDescription.
        modality: Modality.
        n_files: number of image files (with pixel data) in the series.
        paths: those files, sorted.
        series_number: SeriesNumber.
    """

    uid: str
    description: str | None
    modality: str | None
    n_files: int
    paths: tuple[Path, ...]
    series_number: int | None = None

    def summary(self) -> str:
        """One line: UID, description, modality and file count."""
        return f"{self.uid or '<no SeriesInstanceUID>'} ({self.description or 'no description'}, {self.modality or '?'}, {self.n_files} files)"


Entry = tuple[Path, Dataset]


def list_series(folder: str | Path, *, progress: bool = False) -> list[SeriesInfo]:
    """The DICOM image series in a folder (searched recursively), by series number then UID.

    Args:
        folder: the folder.
        progress: show a progress bar while reading headers.

    Raises:
        NotAnImageError: the folder holds no DICOM file.
        NoPixelDataError: it holds DICOM files, none with pixel data.
        CorruptFileError: a DICOM file's header cannot be parsed.
    """
    return [_series_info(uid, entries) for uid, entries in _scan(Path(folder), progress).items()]


def load_dicom_folder(folder: Path, series_uid: str | None, *, progress: bool = False) -> ImageRecord:
    """Load the one series in ``folder``, or the one with ``series_uid``.

    Raises:
        MultipleSeriesError: several series and no ``series_uid``, listing them.
        NotAnImageError: no DICOM image, or no series with ``series_uid``.
        MedvlIOError: (subclasses) any refusal of the files or their geometry.
    """
    series = _scan(folder, progress)
    if series_uid is None:
        if len(series) > 1:
            infos = [_series_info(uid, entries) for uid, entries in series.items()]
            listing = "; ".join(info.summary() for info in infos)
            raise MultipleSeriesError(
                folder, f"{len(series)} series in the folder, choose one with series_uid: {listing}", infos
            )
        series_uid = next(iter(series))
    if series_uid not in series:
        raise NotAnImageError(folder, f"no series {series_uid!r} here; found {', '.join(map(repr, series))}")
    return assemble(series[series_uid], folder, progress=progress)


def load_dicom_file(path: Path, head: bytes) -> ImageRecord:
    """Load one DICOM file (single image, multi-frame object or mosaic).

    Raises:
        MedvlIOError: (subclasses) any refusal.
    """
    ds = read_header(path, head)
    require_pixels(ds, path)
    return assemble([(path, ds)], path)


def assemble(entries: list[Entry], source: Path, *, progress: bool = False) -> ImageRecord:
    """Stack the files of one series (or one file) into a record.

    Raises:
        DecodedSizeError: the series' float32 array would exceed the decoded-size limit.
        MedvlIOError: (other subclasses) inconsistent layouts, geometry, or pixel data.
    """
    layouts = [pixel_layout(ds, path) for path, ds in entries]
    _check_layouts(layouts, entries, source)
    rgb = layouts[0].samples == 3 or layouts[0].photometric == "PALETTE COLOR"
    n_values = sum(layout.rows * layout.cols * layout.frames for layout in layouts) * (3 if rgb else 1)
    check_decoded_size(source, n_values * 4)
    _check_unique_instances(entries, source)
    poses, owners = _frame_poses(entries, layouts, source)
    first_ds = entries[0][1]
    plan = plan_stack(
        poses,
        source,
        slice_step_mm=_slice_step(first_ds, source),
        declared_timepoints=integer(first_ds, "NumberOfTemporalPositions", source),
        names=_frame_names(entries, owners, source),
    )
    if rgb and plan.n_timepoints > 1:
        raise UnsupportedLayoutError(
            source, "a colour time series cannot be represented (RGB plus a time axis)"
        )
    where: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for (index, frame), (z, t) in zip(owners, plan.placement, strict=True):
        where[index].append((frame, z, t))
    order = sorted(where, key=lambda i: (where[i][0][2], where[i][0][1]))  # file of (t=0, z=0) first
    buffer, first = _decode_into_stack(entries, layouts, order, where, plan, source, progress)
    first_path, first_ds = entries[order[0]]
    metadata = dicom_metadata(
        first_ds,
        first_path,
        layout=layouts[order[0]],
        syntax=str(transfer_syntax(first_ds, first_path)),
        sop_uids=[text(entries[i][1], "SOPInstanceUID") or "" for i in order],
        inversion=first.inversion,
        rescale=first.rescale,
        spacing_known=plan.spacing_known,
        slice_positions_mm=plan.slice_positions_mm,
        frame_times=plan.frame_times,
    )
    metadata["n_files"] = len(entries)
    return ImageRecord(
        array=_to_record_axes(buffer, rgb, single_frame=len(poses) == 1),
        affine=plan.affine,
        modality=text(first_ds, "Modality") or "OT",
        photometric=layouts[0].photometric,
        metadata=metadata,
        source=str(source),
        channels=3 if rgb else 1,
    )


def _frame_poses(
    entries: list[Entry], layouts: list[PixelLayout], source: Path
) -> tuple[list[FramePose], list[tuple[int, int]]]:
    """Every frame's pose, and the (file index, frame index) it comes from."""
    poses, owners = [], []
    for index, ((path, ds), layout) in enumerate(zip(entries, layouts, strict=True)):
        file_poses = frame_poses(ds, path, layout)
        poses.extend(file_poses)
        owners.extend((index, frame) for frame in range(len(file_poses)))
    if len(entries) > 1 and any(pose.position is None for pose in poses):
        raise SeriesGeometryError(
            source,
            f"{len(entries)} files without ImagePositionPatient (projection images?) cannot be stacked into a "
            "volume: load them one by one",
        )
    return poses, owners


def _frame_names(entries: list[Entry], owners: list[tuple[int, int]], source: Path) -> list[str]:
    """Each frame's name in errors: its file (relative to the folder), with the frame number when the file
    holds several; ``frame k`` for the frames of one file."""
    per_file = Counter(index for index, _ in owners)
    names = []
    for index, frame in owners:
        path = entries[index][0]
        if len(entries) == 1:
            names.append(f"frame {frame + 1}")
            continue
        name = str(path.relative_to(source)) if path.is_relative_to(source) else path.name
        names.append(f"{name} frame {frame + 1}" if per_file[index] > 1 else name)
    return names


def _decode_into_stack(
    entries: list[Entry],
    layouts: list[PixelLayout],
    order: list[int],
    where: dict[int, list[tuple[int, int, int]]],
    plan: StackPlan,
    source: Path,
    progress: bool,
) -> tuple[np.ndarray, DecodedPixels]:
    """Decode each file once, in ``order``, into a ``(T, Z, rows, cols[, 3])`` buffer."""
    buffer, first = None, None
    for index in tqdm(order, desc="decoding", unit="file", disable=not progress or len(order) < 2):
        path, ds = entries[index]
        decoded = decode_pixels(ds, path, layouts[index])
        if buffer is None:
            buffer = np.empty((plan.n_timepoints, plan.n_slices, *decoded.frames.shape[1:]), dtype=np.float32)
            first = decoded
        if decoded.frames.shape[1:] != buffer.shape[2:]:
            raise MixedMatrixSizeError(source, f"{path.name} decodes to frames of {decoded.frames.shape[1:]}")
        for frame, z, t in where[index]:
            buffer[t, z] = decoded.frames[frame]
    return buffer, first


def _to_record_axes(buffer: np.ndarray, rgb: bool, *, single_frame: bool) -> np.ndarray:
    """``(T, Z, rows, cols[, 3])`` -> ``(X, Y[, Z[, T]])[, 3]`` without copying."""
    order = (3, 2, 1, 0) + ((4,) if rgb else ())
    array = buffer.transpose(order)
    if buffer.shape[0] == 1:
        array = array[:, :, :, 0]
    if single_frame:
        array = array[:, :, 0]
    return array


def _slice_step(ds: Dataset, path: Path) -> float | None:
    item = functional_group(ds, 0, "PixelMeasuresSequence")
    for source in (item, ds):
        if source is None:
            continue
        for keyword in ("SpacingBetweenSlices", "SliceThickness"):
            value = number(source, keyword, path)
            if value and value > 0:
                return value
    return None


def _check_layouts(layouts: list[PixelLayout], entries: list[Entry], source: Path) -> None:
    first = layouts[0]
    for layout, (path, _) in zip(layouts, entries, strict=True):
        if (layout.rows, layout.cols, layout.samples, layout.photometric) != (
            first.rows,
            first.cols,
            first.samples,
            first.photometric,
        ):
            raise MixedMatrixSizeError(
                source,
                f"{path.name} is {layout.rows}x{layout.cols} {layout.photometric} ({layout.samples} samples) but "
                f"{entries[0][0].name} is {first.rows}x{first.cols} {first.photometric} ({first.samples} samples)",
            )


def _check_unique_instances(entries: list[Entry], source: Path) -> None:
    seen: dict[str, Path] = {}
    for path, ds in entries:
        uid = text(ds, "SOPInstanceUID")
        if uid is None:
            continue
        if uid in seen:
            raise DuplicateSliceError(
                source, f"{seen[uid].name} and {path.name} are the same SOP instance {uid}"
            )
        seen[uid] = path


def _scan(folder: Path, progress: bool) -> dict[str, list[Entry]]:
    series: dict[str, list[Entry]] = defaultdict(list)
    n_dicom = 0
    for path in tqdm(list(files_below(folder)), desc="reading headers", unit="file", disable=not progress):
        head = read_head(path)
        if not looks_like_dicom(head):
            continue
        try:
            ds = read_header(path, head)
        except NotAnImageError:
            continue
        n_dicom += 1
        if has_pixels(ds) or expects_pixels(ds):
            require_pixels(ds, path)
            series[text(ds, "SeriesInstanceUID") or ""].append((path, ds))
    if not series:
        if n_dicom:
            raise NoPixelDataError(
                folder, f"{n_dicom} DICOM file(s) and none holds pixel data (SR, RT, DICOMDIR?)"
            )
        raise NotAnImageError(folder, "no DICOM file in this folder or below it")
    return dict(sorted(series.items(), key=lambda kv: (_series_number(kv[1]), kv[0])))


def files_below(folder: Path) -> Iterable[Path]:
    """Files below ``folder``, sorted, hidden ones left out; symbolic links to folders are followed, each real
    folder once (a link back up the tree is not entered again)."""
    seen: set[tuple[int, int]] = set()
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        stat = os.stat(root)
        if (stat.st_dev, stat.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(root, name) for name in files if not name.startswith(".")]
    return sorted(path for path in found if path.is_file())


def _series_number(entries: list[Entry]) -> int:
    try:
        return integer(entries[0][1], "SeriesNumber", entries[0][0], 0) or 0
    except MetadataError:
        return 0


def _series_info(uid: str, entries: list[Entry]) -> SeriesInfo:
    ds = entries[0][1]
    return SeriesInfo(
        uid=uid,
        description=text(ds, "SeriesDescription"),
        modality=text(ds, "Modality"),
        n_files=len(entries),
        paths=tuple(path for path, _ in entries),
        series_number=_series_number(entries),
    )
