"""Concept lexicon: content, extraction with offsets and status, token offsets for a fast tokenizer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medvl.text.errors import LabelSpaceError
from medvl.text.labels import CHEXPERT_14, CT_OBSERVATIONS
from medvl.text.lexicon import CATEGORIES, Lexicon
from medvl.text.tokenizer import train_wordpiece


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return Lexicon.default()


def test_default_content(lexicon: Lexicon) -> None:
    assert len(lexicon) >= 120
    assert {c.category for c in lexicon} == set(CATEGORIES)
    assert all(c.cui is None or re.fullmatch(r"C\d{7}", c.cui) for c in lexicon)
    assert all(c.parent_observation in (None, *CHEXPERT_14, *CT_OBSERVATIONS) for c in lexicon)
    cuis = [c.cui for c in lexicon if c.cui]
    assert len(cuis) == len(set(cuis)), "a CUI is used by two concepts"
    by_name = {c.name: c for c in lexicon}
    assert by_name["cardiomegaly"].cui == "C0018800" and by_name["cardiomegaly"].parent_observation == "Cardiomegaly"
    assert by_name["pleural effusion"].cui == "C0032227"
    assert by_name["pneumothorax"].cui == "C0032326"
    assert by_name["lung"].category == "anatomy"
    for observation in (*CHEXPERT_14[1:], *CT_OBSERVATIONS):
        assert lexicon.children(observation), f"no concept below {observation}"


def test_extract_offsets_longest_match_and_status(lexicon: Lexicon) -> None:
    text = "Right lower lobe consolidation. No pleural effusion. Possible small pneumothorax. PICC line in SVC."
    mentions = lexicon.extract(text)
    found = [(m.concept.name, m.text, m.negated, m.uncertain) for m in mentions]
    assert ("right lower lobe", "Right lower lobe", False, False) in found
    assert ("lung consolidation", "consolidation", False, False) in found
    assert ("pleural effusion", "pleural effusion", True, False) in found
    assert ("pneumothorax", "pneumothorax", False, True) in found
    assert ("central venous catheter", "PICC line", False, False) in found
    assert all(text[m.start : m.end] == m.text for m in mentions)
    assert not any(m.concept.name == "lower lobe" for m in mentions)


def test_inflected_and_hyphenated_forms(lexicon: Lexicon) -> None:
    names = [m.concept.name for m in lexicon.extract("Bibasilar opacities and air-space disease; atelectases.")]
    assert names == ["lung base", "lung opacity", "lung opacity", "atelectasis"]


def test_token_spans_cover_mentions(lexicon: Lexicon) -> None:
    corpus = ["Small left pleural effusion. Mild cardiomegaly. No pneumothorax."] * 20
    tokenizer = train_wordpiece(corpus, vocab_size=700, min_frequency=1)
    text = "Mild cardiomegaly with a small left pleural effusion."
    spans = lexicon.token_spans(text, tokenizer)
    encoding = tokenizer(text, return_offsets_mapping=True)
    for span in spans:
        offsets = encoding["offset_mapping"][span.token_start : span.token_end]
        assert offsets[0][0] <= span.mention.start and offsets[-1][1] >= span.mention.end
    effusion = next(s for s in spans if s.mention.concept.name == "pleural effusion")
    pieces = tokenizer.convert_ids_to_tokens(encoding["input_ids"][effusion.token_start : effusion.token_end])
    assert "".join(p.removeprefix("##") for p in pieces).replace(" ", "") in ("pleuraleffusion",)
    assert tokenizer.convert_ids_to_tokens(encoding["input_ids"][0]) == "[CLS]"
    without_specials = lexicon.token_spans(text, tokenizer, add_special_tokens=False)
    assert [s.token_start for s in without_specials] == [s.token_start - 1 for s in spans]


def test_token_spans_need_fast_tokenizer(lexicon: Lexicon) -> None:
    with pytest.raises(TypeError, match="fast"):
        lexicon.token_spans("effusion", object())


def test_yaml_extends_and_validates(tmp_path: Path) -> None:
    good = tmp_path / "extra.yaml"
    good.write_text("concepts:\n  - {name: azygos lobe, cui: null, category: anatomy, parent: null, synonyms: [azygos fissure]}\n")
    extended = Lexicon.from_yaml(good)
    assert [m.concept.name for m in extended.extract("An azygos fissure.")] == ["azygos lobe"]
    assert len(Lexicon.from_yaml(good, extend=False)) == 1
    for content, reason in [
        ("concepts:\n  - {name: x, cui: 123, category: anatomy}", "'cui' must look like"),
        ("concepts:\n  - {name: x, cui: null, category: organ}", "'category' must be one of"),
        ("concepts:\n  - {name: x, category: finding, synonyms: x}", "'synonyms' must be a list"),
        ("items: []", "'concepts' list"),
    ]:
        good.write_text(content)
        with pytest.raises(LabelSpaceError, match=reason):
            Lexicon.from_yaml(good)


def test_ct_findings_are_concepts_with_their_observation(lexicon: Lexicon) -> None:
    text = (
        "Small ascites in the perihepatic space. 2.1 cm renal cyst. Right hilar lymphadenopathy. "
        "No focal hepatic lesion."
    )
    found = {m.concept.name: (m.concept.parent_observation, m.negated) for m in lexicon.extract(text)}
    assert found["ascites"] == ("Ascites", False)
    assert found["renal cyst"] == ("Kidney Cyst", False)
    assert found["lymphadenopathy"] == ("Lymphadenopathy", False)
    assert found["liver lesion"] == ("Liver Lesion", True)
