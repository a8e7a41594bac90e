"""The labeller against the manual MeSH labels of the IU X-ray reports: a floor on macro-F1 (CI).

The numbers in docs/labeller.md come from `python -m medvl.text.iu_eval`; this test keeps them from sliding.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medvl.text.iu_eval import EVAL_CLASSES, evaluable, macro_f1, reference_positive, score, split_of
from medvl.text.iu_xray import IUReport, read_iu_reports
from medvl.text.labeller import Labeller

MACRO_F1_FLOOR = 0.86
CLASS_F1_FLOOR = 0.65


@pytest.fixture(scope="module")
def labelled(realdata: Path) -> tuple[list[IUReport], list[dict[str, int]]]:
    reports = evaluable(read_iu_reports(realdata / "iu_reports" / "NLMCXR_reports.tgz"))
    return reports, Labeller().label_many([r.findings_impression for r in reports])


def test_evaluation_set_and_split(labelled: tuple[list[IUReport], list[dict[str, int]]]) -> None:
    reports, _ = labelled
    assert 3800 < len(reports) < 3955
    share = sum(split_of(r.report_id) == "test" for r in reports) / len(reports)
    assert 0.45 < share < 0.55
    assert split_of("CXR1") == split_of("CXR1")
    support = {cls.name: sum(reference_positive(r, cls) for r in reports) for cls in EVAL_CLASSES}
    assert support["No Finding"] > 1300 and support["Cardiomegaly"] > 350 and support["Pneumothorax"] >= 20


@pytest.mark.parametrize("uncertain_positive", [True, False])
@pytest.mark.parametrize("split", ["dev", "test"])
def test_macro_f1_floor(
    labelled: tuple[list[IUReport], list[dict[str, int]]], split: str, uncertain_positive: bool
) -> None:
    reports, labels = labelled
    chosen = [(r, lab) for r, lab in zip(reports, labels, strict=True) if split_of(r.report_id) == split]
    scores = score([r for r, _ in chosen], [lab for _, lab in chosen], uncertain_positive=uncertain_positive)
    assert macro_f1(scores) >= MACRO_F1_FLOOR, [(s.name, round(s.f1, 3)) for s in scores]
    assert all(s.f1 >= CLASS_F1_FLOOR for s in scores), [(s.name, round(s.f1, 3)) for s in scores]


def test_score_arithmetic() -> None:
    normal = IUReport("CXR1", findings="x", mesh_major=["normal"])
    effusion = IUReport("CXR2", findings="x", mesh_major=["Pleural Effusion/left/small"])
    scores = {s.name: s for s in score([normal, effusion], [{"No Finding": 1}, {"Pleural Effusion": -1}])}
    assert scores["No Finding"].f1 == 1.0 and scores["Pleural Effusion"].f1 == 1.0
    strict = {s.name: s for s in score([normal, effusion], [{"No Finding": 1}, {"Pleural Effusion": -1}],
                                       uncertain_positive=False)}
    assert strict["Pleural Effusion"].recall == 0.0 and strict["Pleural Effusion"].support == 1
    assert strict["Cardiomegaly"].f1 == 0.0 and strict["Cardiomegaly"].support == 0
