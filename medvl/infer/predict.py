"""Headless findings for files, DICOM series and folders (``medvl predict``): one result per input.

A folder is searched recursively: each DICOM series in it is one input, each other image file (NIfTI, NRRD,
PNG, JPEG) another; a file that cannot be read is reported as a failed input and the rest go on. Each result is
a JSON-ready dict (:func:`predict_one`; the fields are listed in docs/predict.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medvl.infer.attribution import heatmap
from medvl.infer.calibration import kind_name
from medvl.infer.loading import ModelInput, prepare_input
from medvl.infer.reading import Finding, Reader, StudyReading
from medvl.io import ImageRecord, MedvlIOError, load
from medvl.io.dicom_series import files_below, list_series
from medvl.io.formats import read_head, sniff_format


@dataclass(frozen=True)
class Target:
    """One input: a file, or one DICOM series of a folder (``series_uid``); ``error`` when it was refused while
    the folder was searched."""

    path: Path
    series_uid: str | None = None
    error: MedvlIOError | None = None

    @property
    def label(self) -> str:
        """The input as printed: the path, with ``#SERIES_UID`` for a series of a folder."""
        return f"{self.path}#{self.series_uid}" if self.series_uid else str(self.path)


def find_targets(path: str | Path) -> list[Target]:
    """The inputs a path stands for: itself (a file), or every DICOM series and other image file below a folder."""
    path = Path(path)
    if not path.is_dir():
        return [Target(path)]
    targets, has_dicom = [], False
    for file in files_below(path):
        try:
            kind = sniff_format(file, read_head(file))
        except MedvlIOError as exc:
            targets.append(Target(file, error=exc))
            continue
        except OSError as exc:
            targets.append(Target(file, error=MedvlIOError(file, f"cannot read ({exc.strerror})")))
            continue
        if kind == "dicom":
            has_dicom = True
        else:
            targets.append(Target(file))
    if has_dicom:
        try:
            series = list_series(path)
        except MedvlIOError as exc:
            targets.append(Target(path, error=exc))
        else:
            targets += [Target(path, info.uid or None) for info in series]
    return targets


def _load(target: Target) -> ImageRecord:
    if target.error is not None:
        raise target.error
    return load(target.path, series_uid=target.series_uid)


def _heatmap_png(
    reading: StudyReading, reader: Reader, model_input: ModelInput, finding: str, out: Path
) -> Path:
    """A PNG of the finding's heatmap over the slice it peaks on, with a colour bar in the model's logit units."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    analysis = reading.analysis
    index = reading.top_slices[0] if reading.top_slices else 0
    heat = heatmap(analysis, reader.bank.direction(finding), reader.bank.scale, index)
    top, left, bottom, right = analysis.content_box
    grey = model_input.pixels[index, top:bottom, left:right]
    figure, axis = plt.subplots(figsize=(5, 4.4), dpi=100)
    axis.imshow(grey, cmap="gray", vmin=0, vmax=1)
    shown = axis.imshow(heat, cmap="jet", alpha=0.45)
    figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.04, label="region score (logit units)")
    axis.set_title(f"{finding} (slice {index})" if reading.kind == "3d" else finding, fontsize=10)
    axis.axis("off")
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, bbox_inches="tight")
    plt.close(figure)
    return out


def _finding_json(finding: Finding) -> dict[str, Any]:
    return {"name": finding.name, "probability": round(finding.probability, 4), "score": round(finding.score, 4),
            "threshold": None if finding.threshold is None else round(finding.threshold, 4),
            "positive": finding.positive, "source": finding.source}  # fmt: skip


def predict_one(reader: Reader, target: Target, heatmap_dir: Path | None = None) -> dict[str, Any]:
    """Read one input; a refused input gives ``{"input", "status": "error", "error", "error_type"}``."""
    try:
        record = _load(target)
        model_input = prepare_input(record, reader.prep, modality=record.modality)
    except (MedvlIOError, ValueError) as exc:
        return {"input": target.label, "status": "error", "error": str(exc), "error_type": type(exc).__name__}
    modality = "" if record.modality == "OT" else record.modality
    reading = reader.read(model_input, modality, dense=heatmap_dir is not None)
    domain = reading.domain
    result: dict[str, Any] = {
        "input": target.label, "status": "ok", "kind": reading.kind, "modality": modality or None,
        "slices": int(model_input.pixels.shape[0]),
        "out_of_distribution": None if domain is None else not domain.inside,
        "ood_reasons": [] if domain is None else domain.reasons,
        "ood_distance": None if domain is None or not np.isfinite(domain.distance) else round(domain.distance, 4),
        "ood_threshold": None if domain is None or not np.isfinite(domain.threshold) else round(domain.threshold, 4),
        "calibration": reader.calibration_note(reading.kind),
        "findings": [_finding_json(f) for f in reading.findings],
        "top_slices": reading.top_slices,
    }  # fmt: skip
    if heatmap_dir is not None and reading.findings:
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in target.label.strip("/"))[-120:]
        name = reading.findings[0].name
        png = _heatmap_png(
            reading, reader, model_input, name, heatmap_dir / f"{stem}-{name.replace(' ', '_')}.png"
        )
        result["heatmaps"] = {name: str(png)}
    return result


def summary_line(result: dict[str, Any], top: int = 3) -> str:
    """One line for a terminal: the input, whether it is in distribution, and its most probable findings."""
    if result["status"] != "ok":
        return f"{result['input']}: refused ({result['error_type']}): {result['error']}"
    what = kind_name(result["kind"])
    if result["out_of_distribution"]:
        return f"{result['input']}: {what}, OUT OF DISTRIBUTION ({'; '.join(result['ood_reasons'])}); findings hidden"
    findings = ", ".join(
        f"{f['name']} {f['probability']:.2f}"
        + ("" if f["positive"] is None else (" +" if f["positive"] else " -"))
        for f in result["findings"][:top]
    )
    notes = [] if result["findings"] and result["findings"][0]["threshold"] is not None else [result["calibration"]]
    if result["out_of_distribution"] is None:
        notes.append("no out-of-distribution check (the model was saved without a training domain)")
    suffix = f" [{'; '.join(notes)}]" if notes else ""
    return f"{result['input']}: {what}; {findings or 'no finding offered'}{suffix}"
