"""Synthesise a whole phantom cohort: plan patients and phrasing pools, make studies (in parallel), index them.

Folder layout (paths in the index are relative to the cohort folder)::

    cohort.json                              generator version and parameters
    studies.csv                              one row per study (columns: study.INDEX_COLUMNS)
    2d/<patient_id>/<study_id>/image.png     8-bit radiograph (rows, cols)
    2d/<patient_id>/<study_id>/mask.png      bit-coded lesion masks, same grid
    2d/<patient_id>/<study_id>/image.dcm     the same radiograph as DX/CR DICOM (a fraction of studies)
    3d/<patient_id>/<study_id>/ct.nii.gz     CT volume in HU, (X, Y, Z) with its RAS affine
    3d/<patient_id>/<study_id>/mask.nii.gz   bit-coded lesion masks, same grid
    3d/<patient_id>/<study_id>/dicom/*.dcm   the same volume as a CT series, one file per slice, shuffled names
                                             (a fraction of studies; the index's ``dicom`` is empty otherwise)
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from medvl.data.phantom.labels import LABELS_2D, LABELS_3D, MASK_BITS_BY_KIND
from medvl.data.phantom.study import INDEX_COLUMNS, KIND_CODES, StudyOptions, StudyPlan, make_study
from medvl.errors import MedvlError

GENERATOR_VERSION = "2.1"
INDEX_NAME = "studies.csv"
COHORT_NAME = "cohort.json"
_VISIT_WEIGHTS = (0.55, 0.25, 0.12, 0.08)  # patients with 1, 2, 3, 4 studies


class PhantomError(MedvlError, ValueError):
    """Invalid cohort parameters or output folder; the message names the parameter or path and the fix."""


@dataclass(frozen=True)
class CohortSpec:
    """All parameters of a cohort (written to ``cohort.json``); see :func:`synthesize`."""

    n_2d: int
    n_3d: int
    seed: int
    size: int
    ct_size: int
    depth_range: tuple[int, int]
    eval_fraction: float
    dicom_fraction: float
    ct_dicom_fraction: float
    monochrome1_fraction: float
    ap_fraction: float

    def validate(self) -> None:
        """Raise :class:`PhantomError` naming the first invalid parameter."""
        for name in ("n_2d", "n_3d", "seed"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise PhantomError(f"{name} must be a non-negative integer, got {getattr(self, name)!r}")
        if self.n_2d + self.n_3d == 0:
            raise PhantomError("n_2d + n_3d is 0: ask for at least one study")
        for name, low, high in (("size", 64, 4096), ("ct_size", 32, 1024)):
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise PhantomError(f"{name} must be an integer pixel count in [{low}, {high}], got {value!r}")
        lo, hi = self.depth_range if len(self.depth_range) == 2 else (None, None)
        if not (isinstance(lo, int) and isinstance(hi, int) and 16 <= lo <= hi <= 512):
            raise PhantomError(
                f"depth_range must be two integers with 16 <= low <= high <= 512, got {self.depth_range!r}"
            )
        for name in (
            "eval_fraction",
            "dicom_fraction",
            "ct_dicom_fraction",
            "monochrome1_fraction",
            "ap_fraction",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise PhantomError(f"{name} must be a number within [0, 1], got {value!r}")

    def study_options(self) -> StudyOptions:
        """The parameters each study needs."""
        return StudyOptions(
            seed=self.seed,
            size=self.size,
            ct_size=self.ct_size,
            depth_range=self.depth_range,
            dicom_fraction=self.dicom_fraction,
            ct_dicom_fraction=self.ct_dicom_fraction,
            monochrome1_fraction=self.monochrome1_fraction,
            ap_fraction=self.ap_fraction,
        )


def plan_cohort(spec: CohortSpec) -> list[StudyPlan]:
    """Assign studies to patients (1-4 studies each) and patients to phrasing pools, for both kinds.

    The held-out patients (``eval_fraction`` of each kind's patients, rounded) get ``eval`` phrasings.
    """
    plans = []
    for kind, count in (("2d", spec.n_2d), ("3d", spec.n_3d)):
        rng = np.random.default_rng([spec.seed, KIND_CODES[kind], 9])
        visits = []
        while sum(visits) < count:
            visits.append(min(int(rng.choice(4, p=_VISIT_WEIGHTS)) + 1, count - sum(visits)))
        held_out = set(rng.permutation(len(visits))[: round(spec.eval_fraction * len(visits))].tolist())
        index = 0
        for patient, n_visits in enumerate(visits):
            for visit in range(n_visits):
                plans.append(
                    StudyPlan(
                        kind=kind,
                        index=index,
                        study_id=f"s{kind}-{index:06d}",
                        patient_id=f"p{kind}-{patient:05d}",
                        patient_index=patient,
                        visit=visit,
                        phrasing="eval" if patient in held_out else "train",
                    )
                )
                index += 1
    return plans


def _prepare(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise PhantomError(f"{root}: exists and is not a folder; choose another output folder")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise PhantomError(
                f"{root}: folder is not empty; choose an empty folder or overwrite a previous cohort"
            )
        if not (root / COHORT_NAME).is_file():
            raise PhantomError(f"{root}: not empty and holds no {COHORT_NAME}; refusing to overwrite it")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)


def _made(make: Callable[[StudyPlan], dict], plans: list[StudyPlan], workers: int) -> Iterator[dict]:
    """Index rows in plan order, made here or by a pool of spawned processes."""
    if workers == 1:
        yield from map(make, plans)
        return
    chunk = max(1, min(32, len(plans) // (8 * workers)))
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(make, plans, chunksize=chunk)


def _write_index(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=INDEX_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def synthesize(
    out_dir: str | Path,
    n_2d: int = 200,
    n_3d: int = 0,
    seed: int = 0,
    size: int = 256,
    depth_range: tuple[int, int] = (24, 48),
    *,
    ct_size: int = 128,
    eval_fraction: float = 0.2,
    dicom_fraction: float = 0.2,
    ct_dicom_fraction: float = 1.0,
    monochrome1_fraction: float = 0.3,
    ap_fraction: float = 0.3,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write a synthetic phantom cohort and return the path of its index (``studies.csv``).

    Args:
        out_dir: cohort folder; must be empty or absent (or hold a previous cohort and ``overwrite=True``).
        n_2d: number of chest radiographs.
        n_3d: number of CT scans.
        seed: the cohort seed; the same parameters give byte-identical files, whatever ``workers`` is.
        size: radiograph side in pixels.
        depth_range: inclusive range of CT slice counts (16-512; the slice thickness, 0.625-5 mm, is chosen so
            that a scan covers 120-420 mm where its slice count allows).
        ct_size: CT matrix (rows = columns).
        eval_fraction: share of patients whose reports use the held-out ``eval`` phrasings.
        dicom_fraction: share of radiographs also written as DICOM.
        ct_dicom_fraction: share of CTs also written as a DICOM series (writing the series takes most of a
            CT's time; the NIfTI volume is always written).
        monochrome1_fraction: share of those DICOM radiographs stored as MONOCHROME1.
        ap_fraction: share of AP (portable) radiographs; the rest are PA.
        workers: processes making studies (1 = in this process). More than 1 starts spawned processes:
            scripts must call ``synthesize`` under ``if __name__ == "__main__":``.
        overwrite: replace ``out_dir`` when it holds a previous cohort.
        progress: show a progress bar.

    Raises:
        PhantomError: an invalid parameter or output folder.
    """
    spec = CohortSpec(
        n_2d=n_2d,
        n_3d=n_3d,
        seed=seed,
        size=size,
        ct_size=ct_size,
        depth_range=tuple(depth_range),
        eval_fraction=eval_fraction,
        dicom_fraction=dicom_fraction,
        ct_dicom_fraction=ct_dicom_fraction,
        monochrome1_fraction=monochrome1_fraction,
        ap_fraction=ap_fraction,
    )
    spec.validate()
    if not isinstance(workers, int) or workers < 1:
        raise PhantomError(f"workers must be a positive integer, got {workers!r}")
    root = Path(out_dir)
    _prepare(root, overwrite)
    cohort = {
        "generator": "medvl.data.phantom",
        "version": GENERATOR_VERSION,
        "parameters": asdict(spec),
        "mask_bits": MASK_BITS_BY_KIND,
        "label_spaces": {"2d": list(LABELS_2D), "3d": list(LABELS_3D)},
        "index": INDEX_NAME,
    }
    (root / COHORT_NAME).write_text(json.dumps(cohort, indent=2) + "\n", encoding="utf-8")
    plans = plan_cohort(spec)
    made = _made(partial(make_study, spec.study_options(), root), plans, workers)
    rows = list(tqdm(made, total=len(plans), desc="synth", unit="study", disable=not progress))
    index = root / INDEX_NAME
    _write_index(index, rows)
    return index


def read_index(cohort: str | Path) -> list[dict[str, str]]:
    """Rows of a cohort's ``studies.csv`` (``cohort`` is the folder or the index file).

    Raises:
        PhantomError: no index, or one that lacks columns.
    """
    path = Path(cohort)
    if path.is_dir():
        path = path / INDEX_NAME
    if not path.is_file():
        raise PhantomError(f"{path}: no phantom index; create a cohort with 'medvl synth -o DIR'")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in INDEX_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise PhantomError(f"{path}: index lacks column(s) {missing}; regenerate it with 'medvl synth'")
        return list(reader)
