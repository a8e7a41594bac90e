"""Phantom reports are faithful to the planted findings, pools are disjoint, prompts never occur in training text.

The faithfulness check uses its own small sentence labeller (keywords + negation/uncertainty cues), written
independently of the generator's templates.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from medvl.data.phantom import LABELS_2D, LABELS_3D, ZERO_SHOT_PROMPTS, ground_truth, phrases
from medvl.data.phantom.findings import LOBES, SEVERITIES, Finding, sample_ct_findings, sample_cxr_findings
from medvl.data.phantom.reports import finding_fields, render_sentence, write_report

KEYWORDS = {
    "Cardiomegaly": r"cardiomegaly|\bheart\b|\bcardiac\b",
    "Enlarged Cardiomediastinum": r"mediastin",
    "Pleural Effusion": r"effusion|costophrenic",
    "Pneumothorax": r"pneumothora",
    "Consolidation": r"consolidat|airspace",
    "Lung Lesion": r"nodul|\bmass",
    "Lung Opacity": r"opacit",
    "Liver Lesion": r"hepat|liver",
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
        sentence = re.sub(r"^[a-z]+:\s*", "", sentence.strip())
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
    if name == "Cardiomegaly":
        return [Finding(name, severity=s) for s in SEVERITIES]
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
    for name, prompts in ZERO_SHOT_PROMPTS.items():
        assert name in LABELS_3D
        for prompt in prompts:
            core = prompt.lower().rstrip(".")
            assert not [s for s in train if core in s], f"prompt {prompt!r} occurs in the train pool"


def test_project_zero_shot_prompts_are_never_a_training_sentence():
    from medvl.text.prompts import build_prompts

    def normal(text: str) -> str:
        return " ".join(text.lower().rstrip(".").split())

    train = {normal(s) for kind in ("2d", "3d") for _, _, s in _rendered(kind, "train")}
    prompts = {normal(p) for pair in build_prompts().values() for p in (*pair.positive, *pair.negative)}
    assert len(prompts) > 100
    assert sorted(train & prompts) == []


def test_report_kind_and_pool_are_checked():
    with pytest.raises(ValueError, match="kind"):
        write_report("4d", (), "train", np.random.default_rng(0))
    with pytest.raises(ValueError, match="pool"):
        write_report("2d", (), "test", np.random.default_rng(0))
