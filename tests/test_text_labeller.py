"""The findings labeller: hard sentences, phantom-report phrasing, label spaces, mentions."""

from __future__ import annotations

from pathlib import Path

import pytest

from medvl.text.errors import LabelSpaceError
from medvl.text.labeller import Labeller
from medvl.text.labels import CHEXPERT_14, LabelSpace


@pytest.fixture(scope="module")
def labeller() -> Labeller:
    return Labeller()


@pytest.mark.parametrize(
    ("text", "observation", "expected"),
    [
        # negation and its scope
        ("No pleural effusion.", "Pleural Effusion", 0),
        ("Without evidence of pneumothorax.", "Pneumothorax", 0),
        ("The lungs are free of consolidation.", "Consolidation", 0),
        ("Negative for pneumothorax.", "Pneumothorax", 0),
        ("No evidence of pneumonia.", "Pneumonia", 0),
        ("The effusion has resolved.", "Pleural Effusion", 0),
        ("Previously seen pneumothorax is no longer visible.", "Pneumothorax", 0),
        ("Pleural effusion is not seen.", "Pleural Effusion", 0),
        ("No focal consolidation, pleural effusion or pneumothorax is identified.", "Pneumothorax", 0),
        ("No pneumothorax, but there is a small left effusion.", "Pleural Effusion", 1),
        ("No pneumothorax is seen and the effusion is larger.", "Pleural Effusion", 1),
        ("Effusion persists and the pneumothorax has resolved.", "Pleural Effusion", 1),
        # pseudo-negation and double negation
        ("No change in the effusion.", "Pleural Effusion", 1),
        ("No interval increase in the right pleural effusion.", "Pleural Effusion", 1),
        ("The lungs are not free of consolidation.", "Consolidation", 1),
        ("Not without a small pneumothorax.", "Pneumothorax", 1),
        # uncertainty
        ("Cannot exclude pneumonia.", "Pneumonia", -1),
        ("Pneumonia cannot be excluded.", "Pneumonia", -1),
        ("Possible right lower lobe pneumonia.", "Pneumonia", -1),
        ("Findings may represent atelectasis.", "Atelectasis", -1),
        ("Atelectasis versus pneumonia.", "Atelectasis", -1),
        ("Opacity suggestive of pneumonia.", "Pneumonia", -1),
        ("Pneumonia is possible.", "Pneumonia", -1),
        ("Pneumonia is unlikely.", "Pneumonia", 0),
        # attributes
        ("Heart size is normal.", "Cardiomegaly", 0),
        ("The heart is normal in size.", "Cardiomegaly", 0),
        ("The heart is not enlarged.", "Cardiomegaly", 0),
        ("The heart is enlarged.", "Cardiomegaly", 1),
        ("The heart is mildly enlarged.", "Cardiomegaly", 1),
        ("Heart size is upper limits of normal.", "Cardiomegaly", 0),
        ("Borderline cardiomegaly.", "Cardiomegaly", -1),
        ("The heart size and mediastinal contours are normal.", "Enlarged Cardiomediastinum", 0),
        ("Widened mediastinum.", "Enlarged Cardiomediastinum", 1),
        # morphology and synonyms
        ("Bibasilar atelectatic changes.", "Atelectasis", 1),
        ("Patchy opacities in both lungs.", "Lung Opacity", 1),
        ("Bilateral pleural effusions.", "Pleural Effusion", 1),
        ("Healed left rib fractures.", "Fracture", 1),
        ("Left PICC line tip in the SVC.", "Support Devices", 1),
        ("Pericardial effusion.", "Pleural Effusion", None),
        ("Fractured sternal wire.", "Fracture", None),
        # negated verbs keep the negation's scope open
        ("The lungs do not demonstrate focal infiltrate or effusion.", "Pleural Effusion", 0),
        ("Does not appear to be a hydropneumothorax.", "Pneumothorax", 0),
        # "to suggest" after a negation keeps the negation (it is no hedge)
        ("There is no focal airspace opacity to suggest pneumonia.", "Pneumonia", 0),
        # resolved findings, and ones that have not fully resolved
        ("Essentially resolved bibasilar atelectasis.", "Atelectasis", 0),
        ("The right pleural effusion has completely resolved.", "Pleural Effusion", 0),
        ("The left effusion has partially resolved.", "Pleural Effusion", 1),
        ("Almost completely resolved right apical pneumothorax.", "Pneumothorax", 1),
        # historical findings
        ("Surgical clips in a patient with a history of lung cancer.", "Lung Lesion", 0),
        ("Known history of CHF.", "Edema", 0),
        # hedges
        ("Suspicion for small bilateral pleural effusions.", "Pleural Effusion", -1),
        ("Bibasilar opacities, favoring atelectasis.", "Atelectasis", -1),
        ("Features suggest a combination of consolidation and atelectasis.", "Consolidation", -1),
        ("Opacities may be compatible with subsegmental atelectasis.", "Atelectasis", -1),
        ("Abnormal interstitial pattern, differential diagnosis including atypical pulmonary edema.", "Edema", -1),
        ("Consider follow-up radiographs to ensure resolution and exclude an underlying mass.", "Lung Lesion", -1),
        ("Further evaluation with CT can be performed to identify a small nodule.", "Lung Lesion", -1),
        ("The previously seen nodular density is not well-seen on today's study.", "Lung Lesion", -1),
        ("The masslike opacity is not definitely identified on the lateral view.", "Lung Lesion", -1),
        ("A true pulmonary nodule is a possibility.", "Lung Lesion", -1),
        # radiology synonyms
        ("Large masslike opacity in the right lung base.", "Lung Lesion", 1),
        ("Rounded opacity in the left upper lobe.", "Lung Lesion", 1),
    ],
)
def test_hard_sentences(labeller: Labeller, text: str, observation: str, expected: int | None) -> None:
    assert labeller.label(text).get(observation) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mild cardiomegaly.", {"Cardiomegaly": 1}),
        ("Small left pleural effusion.", {"Pleural Effusion": 1}),
        ("Right lower lobe consolidation.", {"Consolidation": 1}),
        ("A 1.2 cm nodule in the left upper lobe.", {"Lung Lesion": 1}),
        ("No pneumothorax.", {"Pneumothorax": 0, "No Finding": 1}),
        ("Possible left lower lobe pneumonia.", {"Pneumonia": -1}),
        ("Moderate pulmonary edema.", {"Edema": 1}),
        ("Endotracheal tube in place. No acute cardiopulmonary abnormality.", {"Support Devices": 1, "No Finding": 1}),
    ],
)
def test_phantom_report_phrasing(labeller: Labeller, text: str, expected: dict[str, int]) -> None:
    assert labeller.label(text) == expected


def test_no_finding_rule(labeller: Labeller) -> None:
    assert labeller.label("No acute cardiopulmonary abnormality. Lungs are clear.") == {"No Finding": 1}
    assert "No Finding" not in labeller.label("Mild cardiomegaly. No effusion.")
    assert "No Finding" not in labeller.label("Possible small effusion.")
    # abnormal findings outside the 14 observations (from the lexicon) also rule it out
    assert labeller.label("Calcified granuloma. Degenerative changes of the spine.") == {}
    assert labeller.label("   ") == {}
    # low lung volumes in their usual wordings are findings too
    assert "No Finding" not in labeller.label("The lungs are hypoventilated. No focal consolidation.")
    assert "No Finding" not in labeller.label("Mildly diminished lung volumes. No effusion.")


def test_aggregation_positive_beats_uncertain_beats_negative(labeller: Labeller) -> None:
    assert labeller.label("No effusion on the left. Small right effusion.")["Pleural Effusion"] == 1
    assert labeller.label("No effusion on the left. Possible right effusion.")["Pleural Effusion"] == -1


def test_output_order_and_label_many(labeller: Labeller) -> None:
    labels = labeller.label("Support lines in place. Mild cardiomegaly. Small effusion.")
    assert list(labels) == [name for name in CHEXPERT_14 if name in labels]
    texts = ["Mild cardiomegaly.", "No pneumothorax."]
    assert labeller.label_many(texts) == [labeller.label(t) for t in texts]


def test_mentions_have_offsets_and_status(labeller: Labeller) -> None:
    text = "No pneumothorax. Mild cardiomegaly; possible pneumonia."
    mentions = labeller.mentions(text)
    assert [(m.observation, m.text, m.status) for m in mentions] == [
        ("Pneumothorax", "pneumothorax", 0),
        ("Cardiomegaly", "cardiomegaly", 1),
        ("Pneumonia", "pneumonia", -1),
    ]
    assert all(text[m.start : m.end] == m.text for m in mentions)


def test_nested_phrase_of_other_observation_is_hidden(labeller: Labeller) -> None:
    labels = labeller.label("Nodular density in the right upper lobe.")
    assert labels == {"Lung Lesion": 1}


def test_default_label_space_is_chexpert_14() -> None:
    space = LabelSpace.default()
    assert space.names == list(CHEXPERT_14)
    assert space["No Finding"].rule == "no_finding"
    assert not space["Support Devices"].blocks_no_finding


def test_yaml_extends_and_replaces(tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "observations:\n"
        "  - name: Hiatal Hernia\n    synonyms: [hiatal hernia, hiatus hernia]\n"
        "  - name: Pneumothorax\n    synonyms: [collapsed lung apex]\n"
        "    patterns: ['\\bpleural\\s+line\\s+at\\s+the\\s+apex\\b']\n"
    )
    extended = LabelSpace.from_yaml(extra)
    assert extended.names == [*CHEXPERT_14, "Hiatal Hernia"]
    labeller = Labeller(extended)
    assert labeller.label("Small hiatal hernias. No pneumothorax.") == {"Pneumothorax": 0, "Hiatal Hernia": 1}
    assert labeller.label("Visible pleural line at the apex.")["Pneumothorax"] == 1
    replaced = Labeller(LabelSpace.from_yaml(extra, extend=False))
    assert replaced.observations == ["Hiatal Hernia", "Pneumothorax"]
    assert replaced.label("Mild cardiomegaly. Hiatus hernia.") == {"Hiatal Hernia": 1}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("just text", "'observations' list"),
        ("observations: []", "is empty"),
        ("observations:\n  - synonyms: [x]", "needs a non-empty string 'name'"),
        ("observations:\n  - name: A\n    synonym: [x]", "unknown field"),
        ("observations:\n  - name: A\n    synonyms: x", "'synonyms' must be a list"),
        ("observations:\n  - name: A\n    patterns: ['(unclosed']", "invalid regular expression"),
        ("observations:\n  - name: A\n    patterns: ['(?P<x>a)']", "named groups"),
        ("observations:\n  - name: A", "needs at least one of"),
        ("observations:\n  - name: A\n    synonyms: [a]\n  - name: A\n    synonyms: [b]", "defined twice"),
        ("observations: [unclosed", "not valid YAML"),
    ],
)
def test_bad_label_space_names_file_and_entry(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(content)
    with pytest.raises(LabelSpaceError, match=reason) as info:
        LabelSpace.from_yaml(path, extend=False)
    assert info.value.path == str(path)


def test_missing_label_space_file(tmp_path: Path) -> None:
    with pytest.raises(LabelSpaceError, match="no such label-space file"):
        LabelSpace.from_yaml(tmp_path / "absent.yaml")
