"""PHI detection and masking on realistic report snippets."""

from __future__ import annotations

import pytest

from medvl.text.phi import KINDS, find_phi, mask_phi

REPORT = """EXAMINATION: Chest PA and lateral, 03/14/2021 10:32
Patient: Mary O'Brien    MRN: 00456789    Accession #: CT20210314001
DOB: 1/2/1930 (age 91). Address: 1200 W Michigan Street, Indianapolis, IN 46202. Phone (317) 555-0123.
INDICATION: 91-year-old woman with cough.
FINDINGS: Mild cardiomegaly. Small left pleural effusion measuring 2.5 x 3.1 cm. Nodule 3.5 cm. T12 compression.
IMPRESSION: Findings discussed with Dr. John A. Smith by telephone on March 14, 2021.
Electronically signed by: Robert K. Jones, MD  robert.jones@iuhealth.org
"""


def _found(text: str) -> list[tuple[str, str]]:
    return [(span.kind, span.text) for span in find_phi(text)]


def test_full_report_every_kind() -> None:
    found = _found(REPORT)
    for expected in [
        ("DATE", "03/14/2021"),
        ("NAME", "Mary O'Brien"),
        ("MRN", "00456789"),
        ("ACCESSION", "CT20210314001"),
        ("DATE", "1/2/1930"),
        ("AGE", "91"),
        ("ADDRESS", "1200 W Michigan Street, Indianapolis, IN 46202"),
        ("PHONE", "(317) 555-0123"),
        ("NAME", "John A. Smith"),
        ("DATE", "March 14, 2021"),
        ("NAME", "Robert K. Jones"),
        ("EMAIL", "robert.jones@iuhealth.org"),
    ]:
        assert expected in found, f"missed {expected}"
    assert {kind for kind, _ in found} == set(KINDS)
    clinical = "Mild cardiomegaly. Small left pleural effusion measuring 2.5 x 3.1 cm. Nodule 3.5 cm. T12"
    assert not any(span.start >= REPORT.index(clinical) and span.end <= REPORT.index(clinical) + len(clinical)
                   for span in find_phi(REPORT))


def test_mask_replaces_spans_and_keeps_offsets() -> None:
    text = "Discussed with Dr. Lee on 2020-01-05; callback 317.555.0199 x204."
    masked, spans = mask_phi(text)
    assert masked == "Discussed with Dr. [NAME] on [DATE]; callback [PHONE]."
    assert all(text[s.start : s.end] == s.text for s in spans)
    assert mask_phi(text, template="<{kind}>")[0].startswith("Discussed with Dr. <NAME>")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("93-year-old female", [("AGE", "93")]),
        ("aged 95 with dyspnea", [("AGE", "95")]),
        ("A 92 yo man", [("AGE", "92")]),
        ("45-year-old man, age 89", []),
        ("Mrs. Smith-Jones was seen", [("NAME", "Smith-Jones")]),
        ("Referring physician: Dr. Ana de la Cruz", [("NAME", "Ana de la Cruz")]),
        ("Patient name: Smith, John", [("NAME", "Smith, John")]),
        ("MR# 7654321 and unlabelled 20190314123", [("MRN", "7654321"), ("MRN", "20190314123")]),
        ("Acc 4455667 and RA12345678", [("ACCESSION", "4455667"), ("ACCESSION", "RA12345678")]),
        ("Call +1 317 555 0123 today", [("PHONE", "+1 317 555 0123")]),
        ("Send to P.O. Box 1234 please", [("ADDRESS", "P.O. Box 1234")]),
        ("Seen on 14 Feb 2020 and in March 2019", [("DATE", "14 Feb 2020"), ("DATE", "March 2019")]),
        ("Comparison 13/45/2020 and ratio 16.2/24.7", []),
    ],
)
def test_kinds(text: str, expected: list[tuple[str, str]]) -> None:
    assert _found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "The heart is normal in size. The mediastinum is unremarkable. The lungs are clear.",
        "Heart size upper limits of normal; cardiothoracic ratio 0.55. Nodule measures 1.2 x 0.8 cm.",
        "No acute fracture of ribs 4-6. Compression deformity of T12 and L1 vertebral bodies, 30% height loss.",
        "Right IJ catheter tip at the cavoatrial junction, 2 cm above the carina. CT chest with contrast 10 mm.",
        "Findings discussed with the ordering team. Patient tolerated the procedure.",
    ],
)
def test_clinical_text_is_left_alone(text: str) -> None:
    assert find_phi(text) == []
