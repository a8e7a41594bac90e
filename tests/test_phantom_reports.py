"""Phantom reports are faithful to the planted findings, pools are disjoint, prompts never occur in training text.

The faithfulness check uses its own small sentence labeller (keywords + negation/uncertainty cues), written
independently of the generator's templates.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from medvl.data.phantom import LABELS_2D, LABELS_3D, ground_truth, phrases
from medvl.data.phantom.findings import (
    FOCAL_CT_FINDINGS,
    LOBES,
    NODE_STATIONS,
    SEVERITIES,
    SIDES,
    Finding,
    sample_ct_findings,
    sample_cxr_findings,
)
from medvl.data.phantom.reports import finding_fields, render_sentence, write_report
from medvl.text.labeller import Labeller
from medvl.text.labels import CT_OBSERVATIONS, LabelSpace
from medvl.text.prompts import PHANTOM_PROMPTS

KEYWORDS = {
    "Cardiomegaly": r"cardiomegaly|\bheart\b|\bcardiac\b",
    "Enlarged Cardiomediastinum": r"mediastin",
    "Pleural Effusion": r"effusion|costophrenic",
    "Pneumothorax": r"pneumothora",
    "Consolidation": r"consolidat|airspace",
    "Lung Lesion": r"nodul|\bmass",
    "Lung Opacity": r"opacit",
    "Liver Lesion": r"\bhepat|\bliver",
    "Kidney Cyst": r"renal|kidney",
    "Ascites": r"ascites|intraperitoneal|free fluid|paracolic|perihepatic",
    "Lymphadenopathy": r"lymph|adenopathy|\bnodes?\b",
    "Pneumonia": r"pneumonia",
    "Edema": r"edema",
    "Atelectasis": r"atelecta",
    "Fracture": r"fracture|osseous",
    "Support Devices": r"\btube\b|catheter|pacemaker|device",
}
UNCERTAIN = r"\b(possible|possibly|may|cannot be excluded|questionable|suspected|could)\b"
NEGATED = r"\b(no|not|without|normal|clear|negative|free|sharp|unremarkable|neither|nor)\b"


def statements(text: str) -> dict[str, set[int]]:
    """Per observation, the polarities the text gives it: 1 asserted, -1 uncertain, 0 denied."""
    found: dict[str, set[int]] = {}
    for sentence in re.split(r"(?<=\.)\s+|\n", text.lower()):
        sentence = re.sub(r"^[a-z ]+:\s*", "", sentence.strip())
        polarity = -1 if re.search(UNCERTAIN, sentence) else 0 if re.search(NEGATED, sentence) else 1
        for name, pattern in KEYWORDS.items():
            if re.search(pattern, sentence):
                found.setdefault(name, set()).add(polarity)
    return found


def assert_faithful(text: str, planted: tuple[Finding, ...], space: tuple[str, ...]) -> dict[str, set[int]]:
    truth = ground_truth((f.name for f in planted), space)
    said = statements(text)
    for finding in planted:
        assert said.get(finding.name, set()) - {0}, f"planted {finding.name} not stated in: {text!r}"
        assert 0 not in said[finding.name], f"planted {finding.name} denied in: {text!r}"
        if not finding.subtle:
            assert -1 not in said[finding.name], f"non-subtle {finding.name} hedged in: {text!r}"
    for name, polarities in said.items():
        if polarities - {0}:
            assert truth.get(name) == 1, f"{name} stated but not planted in: {text!r}"
    return said


def _variants(name: str, kind: str) -> list[Finding]:
    """One finding per combination of the attributes its templates can show."""
    if name in ("Cardiomegaly", "Ascites"):
        return [Finding(name, severity=s) for s in SEVERITIES]
    if name == "Kidney Cyst":
        return [Finding(name, side=side, severity=s, size_cm=3.2) for side in SIDES for s in SEVERITIES]
    if name == "Lymphadenopathy":
        return [
            Finding(name, side=side, severity=s, region=station, size_cm=2.3)
            for side in SIDES
            for station in NODE_STATIONS
            for s in SEVERITIES
        ]
    if name in ("Pleural Effusion", "Pneumothorax"):
        sides = ("right", "left", "bilateral") if name == "Pleural Effusion" else ("right", "left")
        return [Finding(name, side=side, severity=s) for side in sides for s in SEVERITIES]
    if name == "Consolidation" or (name == "Lung Lesion" and kind == "3d"):
        return [
            Finding(name, side=side, severity=s, region=lobe, size_cm=1.5)
            for side, lobe in LOBES
            for s in SEVERITIES
        ]
    if name == "Lung Lesion":
        return [
            Finding(name, side=side, severity=s, region=zone, size_cm=2.2)
            for side in ("right", "left")
            for zone in ("upper", "mid", "lower")
            for s in SEVERITIES
        ]
    return [
        Finding(name, severity=s, region=lobe, size_cm=2.5) for lobe in ("right", "left") for s in SEVERITIES
    ]


def _rendered(kind: str, pool: str):
    """Every sentence a pool can produce: (template key, finding or None, sentence)."""
    table = phrases.CXR_POSITIVE if kind == "2d" else phrases.CT_POSITIVE
    rng = np.random.default_rng(0)
    for (name, variant), pools in table.items():
        for finding in _variants(name, kind):
            if variant.endswith("bilateral") != (finding.side == "bilateral"):
                continue
            if variant.startswith("uncertain") and not finding.subtle:
                continue
            for template in pools.get(pool):
                for _ in range(3):  # severity synonyms are drawn
                    yield (name, variant), finding, render_sentence(template, finding_fields(finding, rng))
    negations = phrases.CXR_NEGATIONS if kind == "2d" else phrases.CT_NEGATIONS
    for negation in negations:
        for template in negation.pools.get(pool):
            yield negation, None, template
    for template in phrases.NORMAL_IMPRESSIONS[kind].get(pool):
        yield "normal", None, template


@pytest.mark.parametrize("kind", ["2d", "3d"])
@pytest.mark.parametrize("pool", phrases.POOLS)
def test_every_template_says_what_it_should(kind, pool):
    space = LABELS_2D if kind == "2d" else LABELS_3D
    count = 0
    for key, finding, sentence in _rendered(kind, pool):
        count += 1
        assert "{" not in sentence and not sentence[0].islower(), sentence
        if finding is not None:
            said = assert_faithful(sentence, (finding,), space)
            expected = -1 if key[1].startswith("uncertain") else 1
            assert expected in said[finding.name], f"{key}: {sentence!r} reads as {said[finding.name]}"
        elif key == "normal":
            assert all(p == {0} for p in statements(sentence).values()), sentence
        else:
            said = statements(sentence)
            assert all(p == {0} for p in said.values()), f"negation asserts something: {sentence!r}"
            assert key.negates <= set(said), f"{sentence!r} should deny {sorted(key.negates)}, reads {said}"
            assert set(said) <= key.requires_absent, (
                f"{sentence!r} denies {set(said) - key.requires_absent} too"
            )
    assert count > 40


@pytest.mark.parametrize("kind", ["2d", "3d"])
def test_generated_reports_are_faithful_and_mentions_match(kind):
    sample = sample_cxr_findings if kind == "2d" else sample_ct_findings
    space = LABELS_2D if kind == "2d" else LABELS_3D
    hedged = normal = 0
    for i in range(400):
        rng = np.random.default_rng(i)
        planted = sample(rng)
        report = write_report(kind, planted, phrases.POOLS[i % 2], rng, view="PA", slice_mm=3.0)
        said = assert_faithful(report.text, planted, space)
        assert "FINDINGS:" in report.text and "IMPRESSION:" in report.text
        assert report.findings in report.text and report.impression in report.text
        for finding in planted:
            assert report.mentions[finding.name] in said[finding.name]
        for name, value in report.mentions.items():
            if value == 0:
                assert ground_truth((f.name for f in planted), space)[name] == 0
        hedged += -1 in report.mentions.values()
        if not planted:
            normal += 1
            assert report.mentions["No Finding"] == 1
            assert any(v == 0 for k, v in report.mentions.items() if k != "No Finding"), report.text
    assert hedged > 10 and normal > 50


def test_only_subtle_findings_are_hedged():
    for i, severity in itertools.product(range(60), ("moderate", "severe")):
        planted = (Finding("Pleural Effusion", side="left", severity=severity),)
        report = write_report("2d", planted, "train", np.random.default_rng(i))
        assert report.mentions["Pleural Effusion"] == 1


@pytest.mark.parametrize("kind", ["2d", "3d"])
def test_train_and_eval_pools_share_no_template(kind):
    def templates(pool):
        out = set()
        table = phrases.CXR_POSITIVE if kind == "2d" else phrases.CT_POSITIVE
        for (_, variant), pools in table.items():
            if not variant.startswith("impression"):
                out.update(pools.get(pool))
        negations = phrases.CXR_NEGATIONS if kind == "2d" else phrases.CT_NEGATIONS
        for negation in negations:
            out.update(negation.pools.get(pool))
        return out | set(phrases.NORMAL_IMPRESSIONS[kind].get(pool))

    train, held_out = templates("train"), templates("eval")
    assert train and held_out and not train & held_out


def test_zero_shot_prompts_never_occur_in_training_sentences():
    train = [s.lower() for kind in ("2d", "3d") for _, _, s in _rendered(kind, "train")]
    for name, prompts in PHANTOM_PROMPTS.items():
        assert name in LABELS_3D
        for prompt in prompts:
            core = prompt.lower().rstrip(".")
            assert not [s for s in train if core in s], f"prompt {prompt!r} occurs in the train pool"


def test_project_zero_shot_prompts_are_never_a_training_sentence():
    from medvl.text.prompts import build_prompts

    def normal(text: str) -> str:
        return " ".join(text.lower().rstrip(".").split())

    train = {normal(s) for kind in ("2d", "3d") for _, _, s in _rendered(kind, "train")}
    for space in (None, LabelSpace.chest_abdomen_ct()):
        prompts = {
            normal(p) for pair in build_prompts(space).values() for p in (*pair.positive, *pair.negative)
        }
        assert len(prompts) > 100
        assert sorted(train & prompts) == []


def test_report_kind_and_pool_are_checked():
    with pytest.raises(ValueError, match="kind"):
        write_report("4d", (), "train", np.random.default_rng(0))
    with pytest.raises(ValueError, match="pool"):
        write_report("2d", (), "test", np.random.default_rng(0))


# Where each focal CT finding is, as its sentences must say it (sizes are rendered "2.3").
_WHERE = {
    "Lung Lesion": lambda f: rf"{f.side} {f.region} lobe",
    "Liver Lesion": lambda f: rf"{f.region} hepatic lobe",
    "Kidney Cyst": lambda f: rf"{f.side} (kidney|renal)",
    "Lymphadenopathy": lambda f: rf"{f.side} {f.region}",
}


def test_ct_reports_state_location_size_and_severity():
    assert set(_WHERE) == set(FOCAL_CT_FINDINGS)
    for pool in phrases.POOLS:
        for key, finding, sentence in _rendered("3d", pool):
            if finding is None:
                continue
            (name, variant), text = key, sentence.lower()
            if name in _WHERE and not variant.startswith("impression"):
                assert f"{finding.size_cm:.1f} cm" in text, f"{key}: no size in {sentence!r}"
                assert re.search(_WHERE[name](finding), text), f"{key}: no location in {sentence!r}"
            if name == "Ascites" and variant == "present":
                assert any(w in text for w in phrases.SEVERITY_WORDS[name][finding.severity]), sentence
            if name == "Pleural Effusion" and not variant.startswith("uncertain"):
                assert finding.side in text or "both sides" in text, sentence


def test_every_ct_finding_has_eval_phrasings_of_its_own():
    for name in ("Liver Lesion", "Kidney Cyst", "Ascites", "Lymphadenopathy"):
        for variant in ("present", "uncertain", "impression"):
            pools = phrases.CT_POSITIVE[(name, variant)]
            assert pools.train and pools.eval and not set(pools.train) & set(pools.eval), (name, variant)
        negations = [n for n in phrases.CT_NEGATIONS if name in n.negates]
        assert negations and all(n.pools.train and n.pools.eval for n in negations), name
    train = {s for _, _, s in _rendered("3d", "train")}
    held_out = {s for _, _, s in _rendered("3d", "eval")}
    assert not train & held_out


@pytest.fixture(scope="module")
def ct_labeller() -> Labeller:
    return Labeller(LabelSpace.chest_abdomen_ct())


@pytest.mark.parametrize("pool", phrases.POOLS)
def test_labeller_reads_the_ct_findings_of_every_template(ct_labeller, pool):
    for key, finding, sentence in _rendered("3d", pool):
        labels = ct_labeller.label(sentence)
        if finding is not None and finding.name in CT_OBSERVATIONS:
            expected = -1 if key[1].startswith("uncertain") else 1
            assert labels.get(finding.name) == expected, f"{sentence!r} labelled {labels}"
        elif finding is None and key != "normal":
            for name in key.negates & set(CT_OBSERVATIONS):
                assert labels.get(name) == 0, f"{sentence!r} should deny {name}, labelled {labels}"
        assert not {n for n in CT_OBSERVATIONS if labels.get(n) in (1, -1)} - (
            {finding.name} if finding is not None else set()
        ), f"{sentence!r} labelled {labels}"


def test_labeller_agrees_with_generated_ct_reports(ct_labeller):
    for i in range(200):
        rng = np.random.default_rng(i)
        planted = sample_ct_findings(rng)
        report = write_report("3d", planted, phrases.POOLS[i % 2], rng, slice_mm=1.25)
        labels = ct_labeller.label(f"{report.findings}\n{report.impression}")
        for name in CT_OBSERVATIONS:
            assert labels.get(name) == report.mentions.get(name), f"{name}: {labels} vs {report.mentions}"
