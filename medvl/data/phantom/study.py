"""One phantom study from its plan entry: image(s), mask, DICOM, report and its index row.

A study depends only on the cohort parameters and its :class:`StudyPlan` (seed, kind, index, patient), so
studies can be made in any order, in any process, and come out byte for byte the same.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medvl.data.phantom import ct, cxr, dicom, files
from medvl.data.phantom.findings import Finding, place_cxr_findings, sample_ct_findings, sample_cxr_findings
from medvl.data.phantom.labels import LABELS_2D, LABELS_3D, ground_truth
from medvl.data.phantom.reports import Report, write_report

KIND_CODES = {"2d": 2, "3d": 3}
_FIRST_DATE = dt.date(2015, 1, 1)
_SYNTAX_WEIGHTS = {"2d": (0.6, 0.2, 0.2), "3d": (1 / 3, 1 / 3, 1 / 3)}

INDEX_COLUMNS = (
    "study_id",
    "patient_id",
    "kind",
    "index",
    "image",
    "mask",
    "dicom",
    "modality",
    "photometric",
    "transfer_syntax",
    "view",
    "sex",
    "age",
    "study_date",
    "phrasing",
    "labels",
    "mentions",
    "details",
    "report",
    "findings",
    "impression",
    "shape",
    "spacing",
    "seed",
)


@dataclass(frozen=True)
class StudyOptions:
    """Cohort parameters that shape each study (see :func:`medvl.data.phantom.synthesize`)."""

    seed: int
    size: int
    ct_size: int
    depth_range: tuple[int, int]
    dicom_fraction: float
    ct_dicom_fraction: float
    monochrome1_fraction: float
    ap_fraction: float


@dataclass(frozen=True)
class StudyPlan:
    """Who and what a study is: its place in the cohort, its patient and phrasing pool."""

    kind: str
    index: int
    study_id: str
    patient_id: str
    patient_index: int
    visit: int
    phrasing: str


@dataclass(frozen=True)
class _Patient:
    sex: str
    age: int
    first_day: int
    interval_days: int
    anatomy_seed: np.random.SeedSequence


def _patient(options: StudyOptions, plan: StudyPlan) -> _Patient:
    demographics_seed, anatomy_seed = np.random.SeedSequence(
        [options.seed, KIND_CODES[plan.kind], 0, plan.patient_index]
    ).spawn(2)
    rng = np.random.default_rng(demographics_seed)
    return _Patient(
        sex="F" if rng.random() < 0.5 else "M",
        age=int(rng.integers(20, 86)),
        first_day=int(rng.integers(0, 3000)),
        interval_days=int(rng.integers(30, 400)),
        anatomy_seed=anatomy_seed,
    )


def _visit_date(patient: _Patient, plan: StudyPlan) -> tuple[str, int]:
    days = patient.first_day + plan.visit * patient.interval_days
    age = patient.age + days // 365 - patient.first_day // 365
    return (_FIRST_DATE + dt.timedelta(days=days)).strftime("%Y%m%d"), age


def _syntax(kind: str, rng: np.random.Generator) -> str:
    return str(rng.choice(tuple(dicom.TRANSFER_SYNTAXES), p=_SYNTAX_WEIGHTS[kind]))


def _row(plan: StudyPlan, patient: _Patient, date: str, age: int, seed: int, **fields: object) -> dict:
    row = dict.fromkeys(INDEX_COLUMNS, "")
    row.update(
        study_id=plan.study_id,
        patient_id=plan.patient_id,
        kind=plan.kind,
        index=plan.index,
        sex=patient.sex,
        age=age,
        study_date=date,
        phrasing=plan.phrasing,
        seed=seed,
    )
    row.update(fields)
    return row


def _report_fields(report: Report, findings: tuple[Finding, ...], space: tuple[str, ...]) -> dict:
    return {
        "labels": json.dumps(ground_truth((f.name for f in findings), space), sort_keys=True),
        "mentions": json.dumps(report.mentions, sort_keys=True),
        "details": json.dumps([f.as_dict() for f in findings], sort_keys=True),
        "report": report.text,
        "findings": report.findings,
        "impression": report.impression,
    }


def make_2d_study(
    options: StudyOptions, plan: StudyPlan, root: Path, source: tuple[tuple[Finding, ...], Report] | None = None
) -> dict:
    """Render, write and index one chest radiograph (PNG, mask PNG, sometimes DICOM); with ``source``, the
    findings to place (:func:`medvl.data.phantom.findings.place_cxr_findings`) and the report to pair them with
    instead of drawn ones."""
    patient = _patient(options, plan)
    meta_rng, finding_rng, report_rng, file_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([options.seed, 2, 1, plan.index]).spawn(4)
    )
    render_seed = np.random.SeedSequence([options.seed, 2, 2, plan.index])
    anatomy = cxr.sample_cxr_anatomy(np.random.default_rng(patient.anatomy_seed))
    view = "AP" if meta_rng.random() < options.ap_fraction else "PA"
    pose = cxr.sample_cxr_pose(meta_rng, view)
    wanted = sample_cxr_findings(finding_rng) if source is None else place_cxr_findings(finding_rng, list(source[0]))
    render = cxr.render_cxr(anatomy, pose, wanted, options.size, render_seed)
    report = write_report("2d", render.findings, plan.phrasing, report_rng, view=view) if source is None else source[1]

    folder = Path("2d") / plan.patient_id / plan.study_id
    (root / folder).mkdir(parents=True, exist_ok=True)
    files.write_png(root / folder / "image.png", np.rint(render.image * 255).astype(np.uint8))
    files.write_png(root / folder / "mask.png", render.mask)
    pixel_mm = anatomy.fov_mm / (options.size * pose.scale)
    date, age = _visit_date(patient, plan)
    fields = {"modality": "DX", "photometric": "MONOCHROME2"}
    if file_rng.random() < options.dicom_fraction:
        fields = {
            "modality": "DX" if file_rng.random() < 0.6 else "CR",
            "photometric": "MONOCHROME1"
            if file_rng.random() < options.monochrome1_fraction
            else "MONOCHROME2",
            "transfer_syntax": _syntax("2d", file_rng),
            "dicom": str(folder / "image.dcm"),
        }
        info = dicom.StudyInfo(plan.patient_id, plan.study_id, patient.sex, age, date, str(options.seed))
        dicom.write_radiograph(
            root / fields["dicom"],
            render.image,
            info,
            modality=fields["modality"],
            view=view,
            photometric=fields["photometric"],
            pixel_mm=pixel_mm,
            magnification=float(file_rng.uniform(1.05, 1.15)),
            syntax=fields["transfer_syntax"],
        )
    return _row(
        plan,
        patient,
        date,
        age,
        options.seed,
        image=str(folder / "image.png"),
        mask=str(folder / "mask.png"),
        view=view,
        shape=json.dumps(list(render.image.shape)),
        spacing=json.dumps([round(pixel_mm, 6)] * 2),
        **fields,
        **_report_fields(report, render.findings, LABELS_2D),
    )


def make_3d_study(options: StudyOptions, plan: StudyPlan, root: Path) -> dict:
    """Render, write and index one CT (NIfTI volume, NIfTI mask, for a share of the studies a DICOM series)."""
    patient = _patient(options, plan)
    meta_rng, finding_rng, report_rng, file_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([options.seed, 3, 1, plan.index]).spawn(4)
    )
    render_seed = np.random.SeedSequence([options.seed, 3, 2, plan.index])
    anatomy = ct.sample_ct_anatomy(np.random.default_rng(patient.anatomy_seed))
    depth = int(meta_rng.integers(options.depth_range[0], options.depth_range[1] + 1))
    geometry = ct.sample_ct_geometry(meta_rng, options.ct_size, depth, 2 * anatomy.body_half_width)
    render = ct.render_ct(anatomy, geometry, sample_ct_findings(finding_rng), render_seed)
    report = write_report("3d", render.findings, plan.phrasing, report_rng, slice_mm=geometry.spacing[0],
                          key_images=ct.key_images(render))

    folder = Path("3d") / plan.patient_id / plan.study_id
    (root / folder).mkdir(parents=True, exist_ok=True)
    date, age = _visit_date(patient, plan)
    fields: dict[str, str] = {}
    if file_rng.random() < options.ct_dicom_fraction:
        fields = {"transfer_syntax": _syntax("3d", file_rng), "dicom": str(folder / "dicom")}
        info = dicom.StudyInfo(plan.patient_id, plan.study_id, patient.sex, age, date, str(options.seed))
        dicom.write_ct_series(
            root / fields["dicom"],
            render.hu,
            geometry,
            info,
            file_rng,
            syntax=fields["transfer_syntax"],
            signed=bool(file_rng.random() < 0.5),
        )
    files.write_nifti(root / folder / "ct.nii.gz", render.hu.transpose(2, 1, 0), geometry.affine_ras)
    files.write_nifti(root / folder / "mask.nii.gz", render.mask.transpose(2, 1, 0), geometry.affine_ras)
    return _row(
        plan,
        patient,
        date,
        age,
        options.seed,
        image=str(folder / "ct.nii.gz"),
        mask=str(folder / "mask.nii.gz"),
        modality="CT",
        photometric="MONOCHROME2",
        shape=json.dumps(list(render.hu.shape[::-1])),
        spacing=json.dumps([round(v, 6) for v in geometry.spacing[::-1]]),
        **fields,
        **_report_fields(report, render.findings, LABELS_3D),
    )


def make_study(options: StudyOptions, root: Path, plan: StudyPlan) -> dict:
    """Make one study of either kind and return its index row (paths relative to ``root``)."""
    return (make_2d_study if plan.kind == "2d" else make_3d_study)(options, plan, root)
