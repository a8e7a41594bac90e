"""Radiology reports for phantom studies, built only from the findings that were drawn.

A report has optional header lines (EXAMINATION, INDICATION, COMPARISON, TECHNIQUE), a FINDINGS section
(planted findings, each asserted or, when subtle, hedged; negations of a random selection of absent findings)
and an IMPRESSION (the planted findings again, or a normal statement). Faithfulness rules: a sentence never
mixes assertion and negation, nothing absent is asserted, nothing planted is denied, and uncertainty is only
used for subtle (mild) findings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from medvl.data.phantom import phrases
from medvl.data.phantom.findings import Finding
from medvl.data.phantom.labels import LABELS_2D, LABELS_3D, ground_truth

HEDGE_PROBABILITY = 0.35
# Share of asserted focal CT findings whose sentence cites the key image ("(series 2, image 34)").
KEY_IMAGE_PROBABILITY = 0.8
_NEGATION_PROBABILITY = {"normal": 0.6, "abnormal": 0.4}
_ORGAN_ORDER = (
    "Heart",
    "Mediastinum",
    "Lymph nodes",
    "Lungs",
    "Pleura",
    "Liver",
    "Kidneys",
    "Peritoneum",
    "Bones",
)


@dataclass(frozen=True)
class Report:
    """A report and what it says.

    Attributes:
        text: the whole report.
        findings: the FINDINGS section.
        impression: the IMPRESSION section.
        mentions: what the text states per observation: 1 asserted, -1 uncertain, 0 denied (absent key: not
            mentioned). Ground truth is separate: an uncertain mention of a planted finding is still truth 1.
    """

    text: str
    findings: str
    impression: str
    mentions: dict[str, int]


def finding_fields(finding: Finding, rng: np.random.Generator) -> dict[str, str]:
    """Template fields of one finding; severity words are drawn once so findings and impression agree."""
    fields = {"side": finding.side}
    words = phrases.SEVERITY_WORDS.get(finding.name)
    if words is not None:
        options = words[finding.severity]
        fields["sev"] = options[int(rng.integers(len(options)))]
        fields["sevly"] = phrases.ADVERBS.get(fields["sev"], fields["sev"])
    if finding.size_cm:
        fields["size"] = f"{finding.size_cm:.1f}"
    if finding.region:
        fields["zone"] = finding.region
        fields["lobe"] = f"{finding.side} {finding.region} lobe"
        fields["hep"] = f"{finding.region} hepatic lobe"
        fields["station"] = f"{finding.side} {finding.region}"
    return fields


def render_sentence(template: str, fields: dict[str, str]) -> str:
    """Fill a template and capitalise the sentence."""
    text = template.format(**fields)
    return text[:1].upper() + text[1:]


def _choose(templates: tuple[str, ...], rng: np.random.Generator) -> str:
    return templates[int(rng.integers(len(templates)))]


def cite_key_image(sentence: str, number: int, pool: str, rng: np.random.Generator) -> str:
    """``sentence`` with a key-image citation before its closing full stop."""
    return f"{sentence.removesuffix('.')} {_choose(phrases.KEY_IMAGE_CITATIONS.get(pool), rng).format(n=number)}."


def _positive_sentences(
    kind: str, findings: tuple[Finding, ...], pool: str, rng: np.random.Generator, key_images: Mapping[str, int]
) -> tuple[list[tuple[str, str]], list[str], dict[str, int]]:
    table = phrases.CXR_POSITIVE if kind == "2d" else phrases.CT_POSITIVE
    sentences, impressions, mentions = [], [], {}
    for finding in findings:
        fields = finding_fields(finding, rng)
        hedged = finding.subtle and rng.random() < HEDGE_PROBABILITY
        suffix = "_bilateral" if finding.side == "bilateral" else ""
        body = table[(finding.name, ("uncertain" if hedged else "present") + suffix)].get(pool)
        summary = table[(finding.name, ("uncertain" if hedged else "impression") + suffix)].get(pool)
        organ = phrases.ORGANS.get(finding.name, "Lungs")
        sentence = render_sentence(_choose(body, rng), fields)
        if not hedged and finding.name in key_images and rng.random() < KEY_IMAGE_PROBABILITY:
            sentence = cite_key_image(sentence, key_images[finding.name], pool, rng)
        sentences.append((organ, sentence))
        impressions.append(render_sentence(_choose(summary, rng), fields))
        mentions[finding.name] = -1 if hedged else 1
    return sentences, impressions, mentions


def _negation_sentences(
    kind: str, findings: tuple[Finding, ...], pool: str, rng: np.random.Generator, mentions: dict[str, int]
) -> list[tuple[str, str]]:
    space = LABELS_2D if kind == "2d" else LABELS_3D
    absent = {name for name, value in ground_truth((f.name for f in findings), space).items() if value == 0}
    table = phrases.CXR_NEGATIONS if kind == "2d" else phrases.CT_NEGATIONS
    probability = _NEGATION_PROBABILITY["abnormal" if findings else "normal"]
    eligible = [table[i] for i in rng.permutation(len(table)) if table[i].requires_absent <= absent]
    chosen = [neg for neg in eligible if rng.random() < probability] or eligible[:1]
    sentences = []
    for negation in chosen:
        if negation.negates & mentions.keys():
            continue
        sentences.append((negation.organ, _choose(negation.pools.get(pool), rng)))
        mentions.update(dict.fromkeys(negation.negates, 0))
    return sentences


def _findings_section(kind: str, sentences: list[tuple[str, str]], rng: np.random.Generator) -> str:
    if kind == "3d" and rng.random() < 0.5:
        by_organ = {organ: " ".join(s for o, s in sentences if o == organ) for organ in _ORGAN_ORDER}
        return "\n".join(f"{organ}: {text}" for organ, text in by_organ.items() if text)
    return " ".join(s for _, s in sentences)


def _impression_section(kind: str, impressions: list[str], pool: str, rng: np.random.Generator) -> str:
    if not impressions:
        return _choose(phrases.NORMAL_IMPRESSIONS[kind].get(pool), rng)
    if len(impressions) > 1 and rng.random() < 0.4:
        return "\n".join(f"{i}. {text}" for i, text in enumerate(impressions, 1))
    return " ".join(impressions)


def _header(kind: str, rng: np.random.Generator, view: str, slice_mm: float) -> list[str]:
    lines = []
    if rng.random() < 0.6:
        lines.append(_choose(phrases.EXAMINATIONS[kind], rng).format(view=view))
    if kind == "3d" and rng.random() < 0.5:
        lines.append(f"TECHNIQUE: Axial images at {slice_mm:g} mm slice thickness.")
    if rng.random() < 0.5:
        lines.append("INDICATION: " + _choose(phrases.INDICATIONS, rng))
    if rng.random() < 0.3:
        lines.append(_choose(phrases.COMPARISONS, rng))
    return lines


def _section(title: str, body: str) -> str:
    return f"{title}:{chr(10) if chr(10) in body else ' '}{body}"


def write_report(
    kind: str,
    findings: tuple[Finding, ...],
    pool: str,
    rng: np.random.Generator,
    *,
    view: str = "",
    slice_mm: float = 0.0,
    key_images: Mapping[str, int] | None = None,
) -> Report:
    """Write the report of one study.

    Args:
        kind: ``2d`` (chest radiograph) or ``3d`` (CT of chest and abdomen).
        findings: the findings drawn in the image.
        pool: phrasing pool, ``train`` or ``eval``.
        rng: random stream of this report.
        view: radiograph view for the EXAMINATION line.
        slice_mm: CT slice thickness for the TECHNIQUE line.
        key_images: finding name -> its key image number; asserted findings cite theirs with probability
            :data:`KEY_IMAGE_PROBABILITY`.
    """
    if kind not in ("2d", "3d"):
        raise ValueError(f"report kind must be '2d' or '3d', got {kind!r}")
    sentences, impressions, mentions = _positive_sentences(kind, findings, pool, rng, key_images or {})
    sentences += _negation_sentences(kind, findings, pool, rng, mentions)
    if rng.random() < 0.4:
        sentences = [sentences[i] for i in rng.permutation(len(sentences))]
    findings_text = _findings_section(kind, sentences, rng)
    impression = _impression_section(kind, impressions, pool, rng)
    if not findings:
        mentions["No Finding"] = 1
    header = _header(kind, rng, view, slice_mm)
    sections = [_section("FINDINGS", findings_text), "", _section("IMPRESSION", impression)]
    text = "\n".join(header + ([""] if header else []) + sections)
    return Report(text=text, findings=findings_text, impression=impression, mentions=mentions)
