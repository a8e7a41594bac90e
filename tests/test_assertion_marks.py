"""Assertion marks: absent and uncertain findings become words of their own, in training texts and prompts alike."""

from __future__ import annotations

import torch

from medvl.text.assertion_marks import MarkingTokenizer, mark_assertions
from medvl.text.tokenizer import train_wordpiece
from tests.test_models_text import encoder

REPORTS = [
    "There is no pneumothorax. Small left pleural effusion.",
    "Pneumothorax is present. No pleural effusion.",
    "The lungs are free of consolidation. Possible right lower lobe consolidation cannot be excluded.",
    "Mild cardiomegaly. No evidence of pleural effusion or pneumothorax.",
] * 40


def test_every_phrasing_of_a_denial_gives_the_same_marked_words():
    marked = [mark_assertions(t) for t in ("There is no pneumothorax.", "no evidence of pneumothorax",
                                           "The lungs are free of pneumothorax", "pneumothorax is not seen")]
    assert all("negpneumothorax" in m and " pneumothorax" not in m for m in marked)
    assert mark_assertions("Small left pneumothorax.") == "Small left pneumothorax."  # present: untouched
    assert mark_assertions("No pleural effusion. Possible consolidation.") == (
        "No negpleural negeffusion. Possible uncconsolidation."
    )
    assert mark_assertions("") == ""


def test_marking_tokenizer_tokenises_the_marked_text_and_forwards_the_rest(tmp_path):
    plain = train_wordpiece([mark_assertions(r) for r in REPORTS], vocab_size=900, min_frequency=1)
    marking = MarkingTokenizer(plain)
    assert marking("There is no pneumothorax.")["input_ids"] == plain("There is no negpneumothorax.")["input_ids"]
    assert marking(["no pneumothorax", "pneumothorax"])["input_ids"] == plain(
        ["no negpneumothorax", "pneumothorax"]
    )["input_ids"]
    assert marking.pad_token_id == plain.pad_token_id and len(marking.get_vocab()) == len(plain.get_vocab())
    words = {t: set(marking(t, add_special_tokens=False)["input_ids"]) for t in ("no pneumothorax", "no", "pneumothorax")}
    assert words["no pneumothorax"] - words["no"] and not (words["no pneumothorax"] - words["no"]) & words["pneumothorax"]


def test_text_encoder_with_marks_encodes_denials_with_other_tokens(tmp_path):
    train_wordpiece([mark_assertions(r) for r in REPORTS], vocab_size=900, out_dir=tmp_path / "tok", min_frequency=1)
    marked, plain = (encoder(tokenizer=str(tmp_path / "tok"), assertion_marks=flag) for flag in (True, False))
    assert isinstance(marked.tokenizer, MarkingTokenizer) and not isinstance(plain.tokenizer, MarkingTokenizer)
    texts = ["There is no pleural effusion.", "There is pleural effusion."]
    with_marks, without = marked.tokenize(texts)["input_ids"], plain.tokenize(texts)["input_ids"]
    assert not torch.equal(with_marks[0], without[0]) and torch.equal(with_marks[1], without[1])
