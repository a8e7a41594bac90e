"""Sections and sentences of radiology text."""

from __future__ import annotations

import pytest

from medvl.text.sections import split_sections
from medvl.text.sentences import sentence_spans, split_sentences

MIMIC_STYLE = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___ year old woman with cough  // r/o pneumonia

 TECHNIQUE:  Chest PA and lateral

 COMPARISON:  None.

 FINDINGS:

 The lungs are clear without focal consolidation.  No pleural effusion or
 pneumothorax is seen.

 IMPRESSION:

 No acute cardiopulmonary process.
"""


def test_mimic_style_sections() -> None:
    sections = split_sections(MIMIC_STYLE)
    assert sections["findings"].startswith("The lungs are clear without focal consolidation.")
    assert sections["impression"] == "No acute cardiopulmonary process."
    assert sections["comparison"] == "None."
    assert "r/o pneumonia" in sections["indication"]
    assert sections["technique"] == "CHEST (PA AND LAT)\nChest PA and lateral"
    assert "other" not in sections


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("findings\nlungs clear\nimpression\nnormal", {"findings": "lungs clear", "impression": "normal"}),
        ("Lungs clear. Impression: normal chest.", {"other": "Lungs clear.", "impression": "normal chest."}),
        ("FINDINGS The lungs are clear. IMPRESSION Normal.", {"findings": "The lungs are clear.", "impression": "Normal."}),
        ("Clinical history: fever. Findings: RLL opacity. Conclusion: pneumonia.",
         {"indication": "fever.", "findings": "RLL opacity.", "impression": "pneumonia."}),
        ("Reason for exam: cough\nFindings - clear\nImpressions: ok", {"indication": "cough", "findings": "clear", "impression": "ok"}),
        ("The history of the patient: cough. Findings are unremarkable.",
         {"other": "The history of the patient: cough. Findings are unremarkable."}),
    ],
)
def test_heading_forms(text: str, expected: dict[str, str]) -> None:
    assert split_sections(text) == expected


def test_repeated_section_is_joined_and_empty_text() -> None:
    assert split_sections("FINDINGS: a.\nIMPRESSION: b.\nFINDINGS: c.") == {"findings": "a.\nc.", "impression": "b."}
    assert split_sections("") == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1. No acute disease. 2. Stable cardiomegaly.", ["No acute disease.", "Stable cardiomegaly."]),
        ("A 3.5 cm. mass is seen. Nodule measures 3.5 cm. No pneumothorax.",
         ["A 3.5 cm. mass is seen.", "Nodule measures 3.5 cm.", "No pneumothorax."]),
        ("Dr. Smith was notified at 3 p.m. today. The heart is normal.",
         ["Dr. Smith was notified at 3 p.m. today.", "The heart is normal."]),
        ("Findings include e.g. effusion. J. Smith reviewed.", ["Findings include e.g. effusion.", "J. Smith reviewed."]),
        ("IMPRESSION:\n1. Mild cardiomegaly.\n2) No effusion\n- bullet one\n* bullet two",
         ["IMPRESSION:", "Mild cardiomegaly.", "No effusion", "bullet one", "bullet two"]),
        ("Is there an effusion? No.", ["Is there an effusion?", "No."]),
        ("Line one wraps\nonto line two. Third.\n\nNew paragraph", ["Line one wraps\nonto line two.", "Third.", "New paragraph"]),
        ("Ratio 0.55 and vs. prior unchanged.", ["Ratio 0.55 and vs. prior unchanged."]),
    ],
)
def test_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_spans_point_into_text() -> None:
    text = "  1. Heart normal.  2. Lungs clear.  "
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == ["Heart normal.", "Lungs clear."]
    assert sentence_spans("   ") == []
