"""Show what medvl reads from an image: shape, voxel spacing, RAS affine, orientation, modality, value range
and key metadata (study/series UIDs, description, transfer syntax, window...).

PATH is a DICOM file, a DICOM folder (one series, or choose with --series), a NIfTI (.nii, .nii.gz), NRRD,
PNG or JPEG file; the format is recognised from the content. Patient name, ID and accession number are never
printed. Spacing and orientation a source does not state (PNG/JPEG, NIfTI with qform_code = sform_code = 0,
radiographs without pixel spacing) are shown as unknown, with the nominal values the affine holds.
Exit status 2 with a one-line reason on stderr when the input is refused (corrupt, undecodable, inconsistent
series geometry, over the decoded-size limit...); a folder with several series lists them.

Examples:
  medvl inspect ct_series/
  medvl inspect study/ --series 1.2.840.113619.2.5.1762583153
  medvl inspect chest.dcm --json
  medvl inspect big.nii.gz --max-decoded-bytes 8G
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import TYPE_CHECKING, Any

from medvl.cli.options import add_max_decoded_bytes, apply_max_decoded_bytes

if TYPE_CHECKING:
    from medvl.io.record import ImageRecord

HELP = "show shape, spacing, affine, modality, value range and key metadata of an image or DICOM folder"

TEXT_KEYS = (
    "study_uid",
    "series_uid",
    "series_number",
    "study_description",
    "series_description",
    "view_position",
    "body_part",
    "manufacturer",
    "transfer_syntax",
    "window_center",
    "window_width",
    "rescale_slope",
    "rescale_intercept",
    "bits_stored",
    "spacing_known",
    "geometry_known",
    "n_files",
)
"""Metadata shown in the text output (JSON shows all but patient identifiers)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medvl inspect``."""
    parser.add_argument("path", help="DICOM file or folder, NIfTI (.nii/.nii.gz), NRRD, PNG or JPEG")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument(
        "--series",
        metavar="UID",
        help="SeriesInstanceUID to load from a folder holding several series (they are listed when omitted)",
    )
    add_max_decoded_bytes(parser)


def run(args: argparse.Namespace) -> int:
    """Load ``args.path`` and print its summary; 2 with a one-line reason on stderr when refused."""
    from medvl.io import MedvlIOError, load
    from medvl.io.errors import MultipleSeriesError

    try:
        apply_max_decoded_bytes(args)
    except ValueError as exc:  # a malformed $MEDVL_MAX_DECODED_BYTES
        print(f"medvl inspect: {exc}", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():  # pydicom warns about every odd value; the summary says what matters
            warnings.simplefilter("ignore")
            record = load(args.path, series_uid=args.series, progress=sys.stderr.isatty())
    except MultipleSeriesError as exc:
        listing = "; ".join(info.summary() for info in exc.series)
        print(
            f"medvl inspect: {exc.path}: {len(exc.series)} series, choose one with --series UID: {listing}",
            file=sys.stderr,
        )
        return 2
    except MedvlIOError as exc:
        print(f"medvl inspect: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    summary = describe(record)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def describe(record: ImageRecord) -> dict[str, Any]:
    """A JSON-ready summary of a record, without patient identifiers."""
    import numpy as np

    from medvl.io import axis_codes, public_metadata

    metadata = public_metadata(record.metadata)
    if metadata.get("voi_lut"):
        lut = metadata["voi_lut"]
        metadata["voi_lut"] = {"first_mapped": lut["first_mapped"], "entries": len(lut["values"])}
    finite = record.array[np.isfinite(record.array)]
    return {
        "path": record.source,
        "format": metadata.pop("format", None),
        "modality": record.modality,
        "photometric": record.photometric,
        "shape": list(record.array.shape),
        "spatial_shape": list(record.spatial_shape),
        "n_timepoints": record.n_timepoints,
        "channels": record.channels,
        "spacing_mm": [round(v, 6) for v in record.spacing],
        "orientation": axis_codes(record),
        "affine": np.round(record.affine, 6).tolist(),
        "value_range": [float(finite.min()), float(finite.max())] if finite.size else None,
        "metadata": metadata,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The text form of :func:`describe`'s summary."""
    axes = "XYZT"[: len(summary["spatial_shape"]) + (summary["n_timepoints"] > 1)]
    spacing = " x ".join(f"{v:g}" for v in summary["spacing_mm"])
    orientation = f"{summary['orientation']} (patient direction each array axis points to)"
    shape = " x ".join(str(v) for v in summary["shape"])
    rows = [
        ("path", summary["path"]),
        ("format", summary["format"]),
        ("modality", f"{summary['modality']} ({summary['photometric']}, {summary['channels']} channel(s))"),
        ("shape", f"{shape}  [{', '.join(axes)}{', RGB' if summary['channels'] == 3 else ''}]"),
        ("spacing (mm)", _nominal(spacing, summary["metadata"].get("spacing_known"))),
        ("orientation", _nominal(orientation, summary["metadata"].get("geometry_known"))),
        ("value range", _range(summary["value_range"])),
    ]
    metadata = summary["metadata"]
    rows += [(key, metadata[key]) for key in TEXT_KEYS if metadata.get(key) is not None]
    if metadata.get("frame_times"):
        times = metadata["frame_times"]
        rows.append(("frame_times", f"{len(times)} time points, {times[0]:g} .. {times[-1]:g} s"))
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"{label + ':':<{width}}{value}" for label, value in rows]
    lines.insert(7, "affine (voxel -> RAS mm):")
    lines[8:8] = [f"  [{'  '.join(f'{v:10.4f}' for v in row)}]" for row in summary["affine"]]
    return "\n".join(lines)


def _nominal(value: str, known: bool | None) -> str:
    return value if known is not False else f"unknown (the source does not say; nominal {value})"


def _range(value_range: list[float] | None) -> str:
    return "no finite value" if value_range is None else f"{value_range[0]:g} .. {value_range[1]:g}"
