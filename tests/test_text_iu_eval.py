"""The labeller against the manual MeSH labels of the IU X-ray reports: a floor on macro-F1 (CI).

The numbers in docs/labeller.md come from `python -m medvl.text.iu_eval`; this test keeps them from sliding.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medvl.text.iu_eval import (
    EVAL_CLASSES,
    ORIGINAL_EVAL_CLASSES,
    EvalClass,
    evaluable,
    macro_f1,
    reference_positive,
    score,
    split_of,
)
from medvl.text.iu_xray import IUReport, read_iu_reports
from medvl.text.labeller import Labeller

# (macro-F1 floor, per-class F1 floor) per (mapping, uncertain counted as positive); measured minima over the two
# halves (docs/labeller.md): corrected, uncertain negative 0.910 / 0.800 (Pneumonia, test half); corrected,
# uncertain positive 0.865 / 0.824 without Pneumonia (Pneumonia 0.444: the indexers rarely code a hedged
# pneumonia); original 0.885 / 0.667.
FLOORS = {
    ("corrected", False): (0.89, 0.76),
    ("corrected", True): (0.84, 0.78),
    ("original", False): (0.86, 0.64),
    ("original", True): (0.86, 0.64),
}
CLASS_FLOOR_EXCEPTIONS = {("corrected", True, "Pneumonia"): 0.40}
MAPPINGS = {"corrected": EVAL_CLASSES, "original": ORIGINAL_EVAL_CLASSES}


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
    assert support["Pneumonia"] >= 40 and support["Lung Lesion / Nodule"] > 150


@pytest.mark.parametrize("mapping", ["corrected", "original"])
@pytest.mark.parametrize("uncertain_positive", [True, False])
@pytest.mark.parametrize("split", ["dev", "test"])
def test_macro_f1_floor(
    labelled: tuple[list[IUReport], list[dict[str, int]]], split: str, uncertain_positive: bool, mapping: str
) -> None:
    reports, labels = labelled
    chosen = [(r, lab) for r, lab in zip(reports, labels, strict=True) if split_of(r.report_id) == split]
    scores = score([r for r, _ in chosen], [lab for _, lab in chosen], MAPPINGS[mapping], uncertain_positive)
    macro_floor, class_floor = FLOORS[(mapping, uncertain_positive)]
    assert macro_f1(scores) >= macro_floor, [(s.name, round(s.f1, 3)) for s in scores]
    below = [
        (s.name, round(s.f1, 3))
        for s in scores
        if s.f1 < CLASS_FLOOR_EXCEPTIONS.get((mapping, uncertain_positive, s.name), class_floor)
    ]
    assert not below, below


def test_pneumonia_is_a_class_and_lung_lesion_covers_nodule_and_mass() -> None:
    by_name = {cls.name: cls for cls in EVAL_CLASSES}
    assert by_name["Pneumonia"].mesh_headings == ("Pneumonia",)
    assert by_name["Pneumonia"].observations == ("Pneumonia",)
    assert "Pneumonia" in by_name["Consolidation / Lung Opacity"].mesh_headings
    assert {"Nodule", "Mass"} <= set(by_name["Lung Lesion / Nodule"].mesh_headings)
    pneumonia = IUReport("CXR1", findings="x", mesh_major=["Pneumonia/lower lobe/right"])
    mass = IUReport("CXR2", findings="x", mesh_major=["Mass/lung/hilum/left"])
    assert reference_positive(pneumonia, by_name["Pneumonia"])
    assert reference_positive(mass, by_name["Lung Lesion / Nodule"])
    # the first mapping keeps its nine classes (it is reported unchanged, for comparison)
    assert "Pneumonia" not in {cls.name for cls in ORIGINAL_EVAL_CLASSES} and len(ORIGINAL_EVAL_CLASSES) == 9


@pytest.mark.parametrize(
    ("term", "class_name"),
    [
        ("Cardiac Shadow/enlarged/moderate", "Cardiomegaly"),
        ("Hydropneumothorax/right", "Pneumothorax"),
        ("Opacity/lung/upper lobe/right/round", "Lung Lesion / Nodule"),
        ("Density/lung/base/left/round/small", "Lung Lesion / Nodule"),
    ],
)
def test_corrected_mapping_counts_terms_the_original_missed(term: str, class_name: str) -> None:
    report = IUReport("CXR1", findings="x", mesh_major=[term])
    corrected = next(c for c in EVAL_CLASSES if c.name == class_name)
    original = next(c for c in ORIGINAL_EVAL_CLASSES if c.name == class_name)
    assert reference_positive(report, corrected) and not reference_positive(report, original)


def test_qualifier_must_match() -> None:
    nodule = EvalClass("Nodule", ("Nodule",), ("Lung Lesion",), (("Opacity", "round"),))
    assert not reference_positive(IUReport("CXR1", mesh_major=["Opacity/lung/base/patchy"]), nodule)
    assert not reference_positive(IUReport("CXR1", mesh_major=["Cardiac Shadow/round"]), nodule)
    assert reference_positive(IUReport("CXR1", mesh_major=["Nodule/lung"]), nodule)


def test_score_arithmetic() -> None:
    normal = IUReport("CXR1", findings="x", mesh_major=["normal"])
    effusion = IUReport("CXR2", findings="x", mesh_major=["Pleural Effusion/left/small"])
    scores = {s.name: s for s in score([normal, effusion], [{"No Finding": 1}, {"Pleural Effusion": -1}])}
    assert scores["No Finding"].f1 == 1.0 and scores["Pleural Effusion"].f1 == 1.0
    strict = {s.name: s for s in score([normal, effusion], [{"No Finding": 1}, {"Pleural Effusion": -1}],
                                       uncertain_positive=False)}
    assert strict["Pleural Effusion"].recall == 0.0 and strict["Pleural Effusion"].support == 1
    assert strict["Cardiomegaly"].f1 == 0.0 and strict["Cardiomegaly"].support == 0


def _report_xml(report_id: str, findings: str, major: str) -> str:
    return (
        f'<eCitation><uId id="{report_id}"/><MedlineCitation><Article><Abstract>'
        f'<AbstractText Label="FINDINGS">{findings}</AbstractText></Abstract></Article></MedlineCitation>'
        f"<MeSH><major>{major}</major></MeSH></eCitation>"
    )


def test_cli_options_select_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medvl.text.iu_eval import main

    (tmp_path / "1.xml").write_text(_report_xml("CXR1", "Right lower lobe pneumonia.", "Pneumonia/lower lobe/right"))
    (tmp_path / "2.xml").write_text(_report_xml("CXR2", "The lungs are clear.", "normal"))
    assert main([str(tmp_path), "--split", "all", "--mapping", "corrected", "--uncertain", "negative"]) == 0
    out = capsys.readouterr().out
    assert out.count("### mapping=") == 1 and "uncertain_positive=False" in out
    assert "| Pneumonia | 1.000 | 1.000 | 1.000 | 1 |" in out
    assert main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("### mapping=") == 12
    assert main([str(tmp_path / "absent.tgz")]) == 2
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0 and "--split" in capsys.readouterr().out
