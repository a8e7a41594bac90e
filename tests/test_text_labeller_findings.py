"""Labeller rules of issue 14 (report labels the findings rest on): ARDS, pneumonia and its hedges, old infections,
nodules and masses, edema from indistinct vessels, fractured devices.

Every sentence is written here in ordinary radiology phrasing (none is copied from the IU X-ray reports).
"""

from __future__ import annotations

import pytest

from medvl.text.labeller import Labeller


@pytest.fixture(scope="module")
def labeller() -> Labeller:
    return Labeller()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # ARDS is diffuse airspace opacity and non-cardiogenic edema: never No Finding
        ("Radiological worsening with typical findings of ARDS.", {"Lung Opacity": 1, "Edema": 1}),
        (
            "Diffuse bilateral opacities compatible with acute respiratory distress syndrome.",
            {"Lung Opacity": 1, "Edema": 1},
        ),
        ("Progression to respiratory distress syndrome.", {"Lung Opacity": 1}),
        ("No radiographic findings of ARDS.", {"No Finding": 1, "Lung Opacity": 0, "Edema": 0}),
    ],
)
def test_ards_is_a_finding(labeller: Labeller, text: str, expected: dict[str, int]) -> None:
    assert labeller.label(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the plain finding, its negation, and the classic hedges (CheXpert: uncertain)
        ("Right lower lobe pneumonia.", 1),
        ("Patchy left basilar infiltrate consistent with pneumonia.", 1),
        ("No pneumonia.", 0),
        ("No focal consolidation to suggest pneumonia.", 0),
        ("Left lower lobe infiltrate concerning for pneumonia.", -1),
        ("Cannot exclude early pneumonia in the right base.", -1),
        # a sentence-level hedge keeps its scope across "this is"
        ("In the appropriate clinical setting, this is compatible with pneumonia.", -1),
        ("In the correct clinical context, the opacity is consistent with an infectious process.", -1),
        # a diagnosis offered as a consideration or an alternative
        ("A superimposed pneumonia would be a consideration.", -1),
        ("Atypical infection is another consideration.", -1),
        ("The opacities may reflect edema, or alternatively an atypical infection.", -1),
        ("Correlate clinically for signs of pneumonia.", -1),
        # an old, healed infection is not a pneumonia of this study
        ("Residua of prior granulomatous infection in the left hilum.", 0),
        ("Calcified hilar nodes, sequela of old infection.", 0),
        ("Interval clearing of the previous right lower lobe pneumonia.", 0),
        # ... but a comparison with a prior study is no history
        ("Compared to the prior study, there is a new right lower lobe pneumonia.", 1),
        ("Since the prior exam a new left lower lobe pneumonia has developed.", 1),
    ],
)
def test_pneumonia_phrasing(labeller: Labeller, text: str, expected: int) -> None:
    assert labeller.label(text).get("Pneumonia") == expected


def test_granulomatous_infection_is_a_granuloma_not_a_pneumonia(labeller: Labeller) -> None:
    labels = labeller.label("Sequelae of granulomatous infection. Lungs otherwise clear.")
    assert labels.get("Pneumonia") != 1 and "No Finding" not in labels


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Spiculated mass in the right upper lobe.", 1),
        ("Two small pulmonary nodules in the left lower lobe.", 1),
        ("Several small round calcific densities in both lungs.", 1),
        ("Rounded calcified density at the left base, most consistent with a granuloma.", 1),
        ("Nodular right upper lobe opacity.", 1),
        ("No suspicious pulmonary nodules or masses.", 0),
        ("CT recommended to exclude an underlying mass.", -1),
        # look-alikes stay out
        ("Nodular and interstitial opacities at both bases.", None),
        ("Rounded atelectasis at the left base.", None),
    ],
)
def test_nodule_and_mass_phrasing(labeller: Labeller, text: str, expected: int | None) -> None:
    assert labeller.label(text).get("Lung Lesion") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Indistinct vascular margination, which may relate to low lung volumes.", 1),
        ("Cardiomegaly with vascular indistinctness.", 1),
        ("No vascular indistinctness.", 0),
    ],
)
def test_indistinct_vessels_are_edema(labeller: Labeller, text: str, expected: int) -> None:
    assert labeller.label(text).get("Edema") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The most lateral fixation screw is fractured.", 0),
        ("Fracture of one of the sternotomy wires, unchanged.", 0),
        ("Healing fracture of the left 6th rib. The fixation screw is fractured.", 1),
        ("Fracture of the right clavicle.", 1),
    ],
)
def test_fractured_device_is_no_bone_fracture(labeller: Labeller, text: str, expected: int) -> None:
    assert labeller.label(text).get("Fracture") == expected
