"""Zero-shot prompt pairs built from the label space and lexicon."""

from __future__ import annotations

from pathlib import Path

import pytest

from medvl.text.labeller import Labeller
from medvl.text.labels import CHEXPERT_14, CT_OBSERVATIONS, LabelSpace
from medvl.text.prompts import build_prompts


def test_one_pair_per_observation_with_ensembles() -> None:
    prompts = build_prompts()
    assert list(prompts) == list(CHEXPERT_14)
    for name, pair in prompts.items():
        assert pair.observation == name
        assert len(pair.positive) >= 4 and len(pair.negative) >= 4
        assert len(set(pair.positive)) == len(pair.positive)
        assert not set(pair.positive) & set(pair.negative)
    assert "there is pleural effusion" in prompts["Pleural Effusion"].positive
    assert "no pleural effusion" in prompts["Pleural Effusion"].negative
    assert "atelectasis" in prompts["Atelectasis"].positive
    assert not any("*" in p or "pleural other" in p for pair in prompts.values() for p in pair.positive)


@pytest.mark.parametrize("space", [None, LabelSpace.chest_abdomen_ct()], ids=["chexpert", "ct"])
def test_labeller_agrees_with_every_prompt(space: LabelSpace | None) -> None:
    labeller = Labeller(space)
    for name, pair in build_prompts(space).items():
        for text in pair.positive:
            assert labeller.label(text).get(name) == 1, text
        if name != "No Finding":
            for text in pair.negative:
                assert labeller.label(text).get(name) == 0, text


def test_chest_abdomen_ct_prompts_cover_the_ct_findings() -> None:
    prompts = build_prompts(LabelSpace.chest_abdomen_ct())
    assert list(prompts) == [*CHEXPERT_14, *CT_OBSERVATIONS]
    assert "there is ascites" in prompts["Ascites"].positive and "no ascites" in prompts["Ascites"].negative
    assert "renal cyst" in prompts["Kidney Cyst"].positive
    assert "there is lymphadenopathy" in prompts["Lymphadenopathy"].positive
    assert "liver lesion" in prompts["Liver Lesion"].positive


def test_custom_label_space_and_ensemble_size(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("observations:\n  - name: Hiatal Hernia\n    synonyms: [hiatal hernia, hiatus hernia]\n")
    prompts = build_prompts(LabelSpace.from_yaml(path, extend=False), max_terms=1, positive_templates=("{term} seen",))
    assert list(prompts) == ["Hiatal Hernia"]
    assert prompts["Hiatal Hernia"].positive == ["hiatal hernia seen"]
    assert len(prompts["Hiatal Hernia"].negative) == 4
