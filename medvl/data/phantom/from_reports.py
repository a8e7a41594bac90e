"""Phantom radiographs rendered from what real reports say (``medvl synth --from-reports iu-xray PATH``).

Each report becomes one study of one patient: the medvl labeller reads the findings the radiograph renderer can
draw (cardiomegaly, pleural effusion, consolidation or pneumonia, lung nodule or mass, pneumothorax), and the
sentence that states each one gives its side, severity, lobe or zone and size where it says them
(:func:`report_findings`; an uncertain mention is drawn mild, what the text leaves open is drawn at random). The
image is rendered with those findings and paired with the real report text, so a model meets real report
language with images whose content is known.

Labels: the rendered findings are the ground truth of what the renderer can draw; the other observations take
the labeller's reading of the report (1 when stated, else 0), and No Finding holds only when both agree.

The IU X-ray reports' licence allows no modified copies: a cohort made from them is generated where it is used
and never shipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from medvl.data.phantom.cohort import (
    COHORT_NAME,
    GENERATOR_VERSION,
    INDEX_NAME,
    CohortSpec,
    PhantomError,
    _made,
    _prepare,
    _write_index,
)
from medvl.data.phantom.findings import CXR_FINDINGS, Finding
from medvl.data.phantom.labels import LABELS_2D
from medvl.data.phantom.reports import Report
from medvl.data.phantom.study import StudyPlan, make_2d_study
from medvl.text.iu_xray import IUReport
from medvl.text.labeller import Labeller
from medvl.text.sentences import split_sentences

SOURCES = ("iu-xray",)
RENDERED_FROM = {
    "Cardiomegaly": ("Cardiomegaly",),
    "Pleural Effusion": ("Pleural Effusion",),
    "Consolidation": ("Consolidation", "Pneumonia"),
    "Lung Lesion": ("Lung Lesion",),
    "Pneumothorax": ("Pneumothorax",),
}
"""Each finding the renderer draws, and the labeller observations that make the renderer draw it."""
_MILD = re.compile(r"\b(small|minimal|trace|tiny|mild|mildly|slight|slightly|borderline|subtle)\b", re.I)
_SEVERE = re.compile(r"\b(large|severe|severely|massive|marked|markedly|extensive|moderate to large)\b", re.I)
_MODERATE = re.compile(r"\bmoderate(ly)?\b", re.I)
_BOTH = re.compile(r"\b(bilateral|bilaterally|bibasilar|bibasal|both)\b", re.I)
_SIDE = re.compile(r"\b(left|right)\b", re.I)
_SIZE = re.compile(r"\b(\d+(?:\.\d+)?)\s*(cm|mm)\b", re.I)
_LOBE = (("upper", r"\b(upper|apical|apex|apices)\b"), ("middle", r"\b(middle|lingula|lingular)\b"),
         ("lower", r"\b(lower|basilar|base|bases|basal|retrocardiac)\b"))  # fmt: skip
_ZONE = (("upper", r"\b(upper|apical|apex)\b"), ("mid", r"\b(mid|middle|perihilar|hilar)\b"),
         ("lower", r"\b(lower|basilar|base|bases|basal)\b"))  # fmt: skip


def _severity(sentence: str, uncertain: bool) -> str:
    if uncertain or _MILD.search(sentence):
        return "mild"
    if _SEVERE.search(sentence):
        return "severe"
    return "moderate" if _MODERATE.search(sentence) else ""


def _side(sentence: str, name: str) -> str:
    if _BOTH.search(sentence):
        return "bilateral" if name == "Pleural Effusion" else ""
    sides = {m.lower() for m in _SIDE.findall(sentence)}
    if len(sides) == 2:
        return "bilateral" if name == "Pleural Effusion" else ""
    return sides.pop() if sides else ""


def _region(sentence: str, table: tuple[tuple[str, str], ...]) -> str:
    return next((region for region, pattern in table if re.search(pattern, sentence, re.I)), "")


def _size_cm(sentence: str) -> float:
    match = _SIZE.search(sentence)
    if not match:
        return 0.0
    value = float(match.group(1)) / (10.0 if match.group(2).lower() == "mm" else 1.0)
    return round(min(max(value, 0.5), 3.0), 1)


def report_findings(text: str, labeller: Labeller) -> tuple[list[Finding], dict[str, int]]:
    """The renderable findings a report states (with what its sentences say of them) and the labeller's labels
    of the whole report."""
    labels = labeller.label(text)
    wanted = []
    for name in CXR_FINDINGS:
        sources = RENDERED_FROM[name]
        values = [labels.get(source) for source in sources]
        if 1 not in values and -1 not in values:
            continue
        stating = [s for s in split_sentences(text) if any(labeller.label(s).get(src) in (1, -1) for src in sources)]
        sentence = " ".join(stating)
        uncertain = 1 not in values
        finding = Finding(name, side=_side(sentence, name), severity=_severity(sentence, uncertain))
        if name == "Consolidation":
            finding = replace(finding, region=_region(sentence, _LOBE))
        elif name == "Lung Lesion":
            finding = replace(finding, region=_region(sentence, _ZONE), size_cm=_size_cm(sentence))
        wanted.append(finding)
    return wanted, labels


def _labels_row(row: dict, labels: dict[str, int]) -> dict:
    """Merge the labeller's reading into the rendered ground truth (see the module doc)."""
    truth = json.loads(row["labels"])
    rendered = set(RENDERED_FROM) | {"Lung Opacity", "Enlarged Cardiomediastinum"}
    for name in LABELS_2D:
        if name not in rendered and name != "No Finding" and labels.get(name) == 1:
            truth[name] = 1
    abnormal = any(v == 1 for k, v in truth.items() if k != "No Finding")
    truth["No Finding"] = int(not abnormal and labels.get("No Finding") == 1)
    return {**row, "labels": json.dumps(truth, sort_keys=True), "mentions": json.dumps(labels, sort_keys=True)}


def _make(options, root: Path, sources: dict, plan: StudyPlan) -> dict:
    findings, report, labels = sources[plan.study_id]
    return _labels_row(make_2d_study(options, plan, root, (tuple(findings), report)), labels)


def synthesize_from_reports(
    out_dir: str | Path,
    reports: Sequence[IUReport],
    seed: int = 0,
    size: int = 256,
    eval_fraction: float = 0.2,
    limit: int | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write a cohort of one radiograph per report (those with FINDINGS or IMPRESSION text, the first ``limit``)
    and return its index.

    Raises:
        PhantomError: no usable report, or an invalid parameter or output folder.
    """
    usable = [r for r in reports if (r.findings or r.impression).strip()][:limit]
    if not usable:
        raise PhantomError("no report with a FINDINGS or IMPRESSION section to render")
    spec = CohortSpec(n_2d=len(usable), n_3d=0, seed=seed, size=size, ct_size=128, depth_range=(24, 48),
                      eval_fraction=eval_fraction, dicom_fraction=0.0, ct_dicom_fraction=0.0,
                      monochrome1_fraction=0.0, ap_fraction=0.3)  # fmt: skip
    spec.validate()
    root = Path(out_dir)
    _prepare(root, overwrite)
    labeller = Labeller()
    held_out = set(np.random.default_rng([seed, 7]).permutation(len(usable))[: round(eval_fraction * len(usable))].tolist())
    plans, sources = [], {}
    for i, report in enumerate(tqdm(usable, desc="reading reports", unit="report", disable=not progress)):
        study_id = f"iu-{report.report_id}"
        plans.append(StudyPlan("2d", i, study_id, study_id, i, 0, "eval" if i in held_out else "train"))
        text = "\n".join(part for part in (f"FINDINGS: {report.findings}" if report.findings else "",
                                           f"IMPRESSION: {report.impression}" if report.impression else "") if part)  # fmt: skip
        findings, labels = report_findings(f"{report.findings} {report.impression}", labeller)
        sources[study_id] = (findings, Report(text, report.findings, report.impression, labels), labels)
    cohort = {"generator": "medvl.data.phantom.from_reports", "version": GENERATOR_VERSION,
              "parameters": {"source": "iu-xray", "reports": len(usable), "seed": seed, "size": size,
                             "eval_fraction": eval_fraction},
              "label_spaces": {"2d": list(LABELS_2D)}, "index": INDEX_NAME,
              "licence": "rendered from the IU X-ray reports (Open-i): no modified copies may be shipped"}  # fmt: skip
    (root / COHORT_NAME).write_text(json.dumps(cohort, indent=2) + "\n", encoding="utf-8")
    made = _made(partial(_make, spec.study_options(), root, sources), plans, workers)
    rows = list(tqdm(made, total=len(plans), desc="synth", unit="study", disable=not progress))
    index = root / INDEX_NAME
    _write_index(index, rows)
    return index
