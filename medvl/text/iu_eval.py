"""Evaluation of the findings labeller against the manual MeSH terms of the IU X-ray reports.

A MeSH term ``Heading/qualifier/...`` counts for a class when its heading (the part before the first ``/``) is
one of the class's headings, or when heading and one of its qualifiers form one of the class's qualified terms
(``Cardiac Shadow/enlarged`` is Cardiomegaly, ``Opacity/.../round`` a nodule). :data:`ORIGINAL_EVAL_CLASSES`
keeps the first mapping, fixed before the rules were tuned; :data:`EVAL_CLASSES` corrects three of its
mistakes and adds Pneumonia as a class of its own (:data:`PNEUMONIA_CLASS`; see docs/labeller.md), and both are
reported. The labeller reads FINDINGS + IMPRESSION; a prediction is positive when the labeller gives 1 (and, with
``uncertain_positive=True``, also -1) to one of the class's observations. Reports indexed ``No Indexing`` and
reports with empty FINDINGS and IMPRESSION are left out: they have no reference. The archive is split by a hash
of the report id into a development half (used while writing rules) and a held-out test half.

Run ``python -m medvl.text.iu_eval [ARCHIVE] [--split test] [--mapping corrected] [--uncertain negative]`` to
print the tables of ``docs/labeller.md`` (all of them without options).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medvl.text.iu_xray import IUReport, read_iu_reports
from medvl.text.labeller import Labeller


@dataclass(frozen=True)
class EvalClass:
    """One evaluated class: the MeSH terms of the reference and the labeller observations of the prediction.

    Attributes:
        name: the class's name in the tables.
        mesh_headings: headings that count whatever their qualifiers.
        observations: labeller observations whose positive label predicts the class.
        mesh_qualified: ``(heading, qualifier)`` pairs that count when the term has that qualifier.
    """

    name: str
    mesh_headings: tuple[str, ...]
    observations: tuple[str, ...]
    mesh_qualified: tuple[tuple[str, str], ...] = ()


ORIGINAL_EVAL_CLASSES: tuple[EvalClass, ...] = (
    EvalClass("No Finding", ("normal",), ("No Finding",)),
    EvalClass("Cardiomegaly", ("Cardiomegaly",), ("Cardiomegaly",)),
    EvalClass("Pleural Effusion", ("Pleural Effusion",), ("Pleural Effusion",)),
    EvalClass("Pneumothorax", ("Pneumothorax",), ("Pneumothorax",)),
    EvalClass("Atelectasis", ("Pulmonary Atelectasis",), ("Atelectasis",)),
    EvalClass(
        "Consolidation / Lung Opacity",
        ("Opacity", "Airspace Disease", "Consolidation", "Infiltrate", "Pneumonia"),
        ("Lung Opacity", "Consolidation", "Pneumonia"),
    ),
    EvalClass("Edema", ("Pulmonary Edema", "Pulmonary Congestion", "Heart Failure"), ("Edema",)),
    EvalClass("Lung Lesion / Nodule", ("Nodule", "Mass"), ("Lung Lesion",)),
    EvalClass("Fracture", ("Fractures, Bone",), ("Fracture",)),
)
_CORRECTIONS = {
    "Cardiomegaly": EvalClass("Cardiomegaly", ("Cardiomegaly",), ("Cardiomegaly",), (("Cardiac Shadow", "enlarged"),)),
    "Pneumothorax": EvalClass("Pneumothorax", ("Pneumothorax", "Hydropneumothorax"), ("Pneumothorax",)),
    "Lung Lesion / Nodule": EvalClass(
        "Lung Lesion / Nodule", ("Nodule", "Mass"), ("Lung Lesion",), (("Opacity", "round"), ("Density", "round"))
    ),
}
# Pneumonia as a class of its own (issue 14): the MeSH heading ``Pneumonia`` against the labeller's Pneumonia.
# It stays inside Consolidation / Lung Opacity too (CheXpert's hierarchy: pneumonia is a lung opacity).
PNEUMONIA_CLASS = EvalClass("Pneumonia", ("Pneumonia",), ("Pneumonia",))


def _with_pneumonia(classes: tuple[EvalClass, ...]) -> tuple[EvalClass, ...]:
    """``classes`` with :data:`PNEUMONIA_CLASS` after Consolidation / Lung Opacity."""
    out: list[EvalClass] = []
    for cls in classes:
        out.append(cls)
        if cls.name == "Consolidation / Lung Opacity":
            out.append(PNEUMONIA_CLASS)
    return tuple(out)


EVAL_CLASSES: tuple[EvalClass, ...] = _with_pneumonia(
    tuple(_CORRECTIONS.get(cls.name, cls) for cls in ORIGINAL_EVAL_CLASSES)
)

NO_REFERENCE = "No Indexing"


@dataclass(frozen=True)
class ClassScore:
    """Precision, recall, F1 and support (reference positives) of one class."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int


def split_of(report_id: str) -> str:
    """``dev`` or ``test``: a fixed half of the archive chosen by a hash of the report id."""
    return "dev" if hashlib.sha256(report_id.encode()).digest()[0] % 2 == 0 else "test"


def evaluable(reports: Sequence[IUReport]) -> list[IUReport]:
    """Reports with a MeSH reference and some FINDINGS or IMPRESSION text."""
    return [r for r in reports if r.findings_impression.strip() and NO_REFERENCE not in r.mesh_major]


def reference_positive(report: IUReport, cls: EvalClass) -> bool:
    """Whether the report's manual MeSH terms contain one of the class's headings or qualified terms."""
    for term in report.mesh_major:
        heading, *qualifiers = (part.strip() for part in term.split("/"))
        if heading in cls.mesh_headings or any((heading, q) in cls.mesh_qualified for q in qualifiers):
            return True
    return False


def predicted_positive(labels: dict[str, int], cls: EvalClass, uncertain_positive: bool = True) -> bool:
    """Whether the labeller's output is positive for the class."""
    accepted = (1, -1) if uncertain_positive else (1,)
    return any(labels.get(obs) in accepted for obs in cls.observations)


def score(
    reports: Sequence[IUReport],
    labels: Sequence[dict[str, int]],
    classes: Sequence[EvalClass] = EVAL_CLASSES,
    uncertain_positive: bool = True,
) -> list[ClassScore]:
    """Per-class scores of ``labels`` (one dict per report, as :meth:`Labeller.label` returns)."""
    scores = []
    for cls in classes:
        tp = fp = fn = 0
        for report, predicted in zip(reports, labels, strict=True):
            truth = reference_positive(report, cls)
            guess = predicted_positive(predicted, cls, uncertain_positive)
            tp += truth and guess
            fp += guess and not truth
            fn += truth and not guess
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores.append(ClassScore(cls.name, precision, recall, f1, tp + fn, tp + fp))
    return scores


def macro_f1(scores: Sequence[ClassScore]) -> float:
    """Unweighted mean F1 over the classes."""
    return sum(s.f1 for s in scores) / len(scores)


def evaluate(
    reports: Sequence[IUReport],
    split: str | None = None,
    labeller: Labeller | None = None,
    uncertain_positive: bool = True,
    classes: Sequence[EvalClass] = EVAL_CLASSES,
) -> list[ClassScore]:
    """Label FINDINGS + IMPRESSION of the evaluable ``reports`` (optionally one split) and score them."""
    chosen = [r for r in evaluable(reports) if split is None or split_of(r.report_id) == split]
    labeller = labeller or Labeller()
    labels = labeller.label_many([r.findings_impression for r in chosen])
    return score(chosen, labels, classes, uncertain_positive)


def markdown_table(scores: Sequence[ClassScore]) -> str:
    """The scores as a Markdown table with a macro-average row."""
    lines = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {s.name} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} | {s.support} |" for s in scores]
    lines.append(f"| **macro average** | | | **{macro_f1(scores):.3f}** | |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the development, test and whole-archive tables (uncertain counted as positive, then as negative),
    with the corrected mapping, then with the original one; options narrow the selection."""
    import argparse

    from medvl.realdata import realdata_root
    from medvl.text.errors import ReportSourceError

    parser = argparse.ArgumentParser(
        prog="python -m medvl.text.iu_eval",
        description="Score the findings labeller against the manual MeSH terms of the IU X-ray reports "
        "(docs/labeller.md). Prints one Markdown table per mapping, uncertainty policy and half.",
    )
    parser.add_argument(
        "archive",
        nargs="?",
        help="NLMCXR_reports.tgz or its extracted folder (default: iu_reports/NLMCXR_reports.tgz of the "
        "real-data bundle, $MEDVL_REALDATA)",
    )
    parser.add_argument("--split", choices=("dev", "test", "all"), action="append",
                        help="half to score (repeatable; default: dev, test and all)")
    parser.add_argument("--mapping", choices=("corrected", "original"), action="append",
                        help="MeSH mapping (repeatable; default: both)")
    parser.add_argument("--uncertain", choices=("positive", "negative"), action="append",
                        help="count uncertain (-1) labels as positive or negative (repeatable; default: both)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    root = realdata_root()
    archive = Path(args.archive) if args.archive else (root / "iu_reports" / "NLMCXR_reports.tgz" if root else None)
    if archive is None:
        print("no archive given and no real-data bundle found (set MEDVL_REALDATA)", file=sys.stderr)
        return 2
    try:
        reports = evaluable(read_iu_reports(archive))
    except ReportSourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    labels = Labeller().label_many([r.findings_impression for r in reports])
    mappings = {"corrected": EVAL_CLASSES, "original": ORIGINAL_EVAL_CLASSES}
    for mapping in args.mapping or ("corrected", "original"):
        for uncertain_positive in [u == "positive" for u in args.uncertain or ("positive", "negative")]:
            for split in args.split or ("dev", "test", "all"):
                chosen = [i for i, r in enumerate(reports) if split == "all" or split_of(r.report_id) == split]
                scores = score(
                    [reports[i] for i in chosen], [labels[i] for i in chosen], mappings[mapping], uncertain_positive
                )
                print(f"\n### mapping={mapping} split={split} uncertain_positive={uncertain_positive}\n")
                print(markdown_table(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
