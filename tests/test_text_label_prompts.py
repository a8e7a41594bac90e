"""Label prompts (CXR-CLIP-style training texts from a study's labels) and their place in the token bank."""

import numpy as np
import pytest

from medvl.data.cache import CachedCohort
from medvl.text.label_prompts import NEGATIVE, POSITIVE, LabelPrompts
from medvl.text.labeller import Labeller
from medvl.text.prompts import NEGATIVE_TEMPLATES, POSITIVE_TEMPLATES


def test_every_positive_is_stated_and_negatives_are_denied_as_the_labeller_reads_them():
    writer, labeller = LabelPrompts(), Labeller()
    labels = {"Cardiomegaly": 1, "Pneumothorax": 1, "Pleural Effusion": 0, "Lung Lesion": 0, "Edema": float("nan"),
              "Fracture": -1, "No Finding": 0}  # fmt: skip
    denied_ever = set()
    for seed in range(20):
        text = writer.write(labels, np.random.default_rng(seed), max_negatives=2)
        read = labeller.label(text)
        assert read.get("Cardiomegaly") == 1 and read.get("Pneumothorax") == 1, text
        denied = [n for n in ("Pleural Effusion", "Lung Lesion", "Edema") if read.get(n) == 0]
        assert len(denied) == 2 and "Fracture" not in read, text  # uncertain findings are never denied
        denied_ever |= set(denied)
    assert denied_ever == {"Pleural Effusion", "Lung Lesion", "Edema"}  # unmentioned ones are denied too


def test_a_normal_study_gets_a_normal_statement():
    text = LabelPrompts().write({"No Finding": 1, "Cardiomegaly": 0}, np.random.default_rng(0), max_negatives=0)
    assert Labeller().label(text).get("No Finding") == 1, text


def test_templates_are_not_the_zero_shot_prompts():
    assert not set(POSITIVE) & set(POSITIVE_TEMPLATES) and not set(NEGATIVE) & set(NEGATIVE_TEMPLATES)


@pytest.mark.parametrize("mode", ["report", "sentence"])
def test_token_bank_adds_label_prompts_per_item(tiny_cache, mode):
    from medvl.data.pairs import cached_report_text
    from medvl.text.tokenizer import train_wordpiece
    from medvl.train.text_ids import bank_key, token_bank

    cohort = CachedCohort(tiny_cache)
    indices = np.arange(10)
    tokenizer = train_wordpiece([cached_report_text(cohort, i) for i in range(len(cohort))], vocab_size=1000)
    plain = token_bank(cohort, indices, mode, tokenizer, 64)
    extended = token_bank(cohort, indices, mode, tokenizer, 64, label_prompts=2)
    added = np.diff(extended.first) - np.diff(plain.first)
    assert set(added.tolist()) <= {2} and added.sum() >= 2 * 8  # a study with no known label gets none
    assert bank_key(cohort, indices, mode, tokenizer, 64) != bank_key(cohort, indices, mode, tokenizer, 64, 2)
    again = token_bank(cohort, indices, mode, tokenizer, 64, label_prompts=2)
    assert [again.texts[i] for i in range(len(again.texts))] == [extended.texts[i] for i in range(len(extended.texts))]


def test_polarity_bank_draws_a_statement_and_its_negation_with_the_right_target(tiny_cache):
    from medvl.data.pairs import cached_report_text
    from medvl.text.tokenizer import train_wordpiece
    from medvl.train.text_ids import PolarityBank

    cohort = CachedCohort(tiny_cache)
    tokenizer = train_wordpiece([cached_report_text(cohort, i) for i in range(len(cohort))], vocab_size=1000)
    bank = PolarityBank.build(cohort.label_space, tokenizer, 32)
    labels = np.full((64, len(cohort.label_space)), np.nan, dtype=np.float32)
    labels[:, bank.columns] = np.tile([1.0, 0.0, -1.0, np.nan], 16)[:, None]
    ids, mask, targets = bank.draw(labels, np.arange(64, dtype=np.uint64) * 7919)
    assert ids.shape[0] == 128 and mask.shape == ids.shape
    assert targets.tolist() == [0, 1, -100, 1] * 16
    texts = [tokenizer.decode(row[row != tokenizer.pad_token_id], skip_special_tokens=True) for row in ids]
    statements, negations = texts[:64], texts[64:]
    assert all(" present" in s or " seen" in s or "demonstrates" in s or "identified" in s for s in statements)
    assert all(" absent" in n or "not seen" in n or "negative for" in n or "without sign" in n for n in negations)


def test_polarity_loss_prefers_the_true_statement():
    import torch

    from medvl.losses import polarity_loss

    img = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    right, wrong = img + 0.1 * torch.randn(8, 16), -img
    present = torch.zeros(8, dtype=torch.long)
    assert polarity_loss(img, right, wrong, present, 10.0) < 0.01 < polarity_loss(img, wrong, right, present, 10.0)
    assert polarity_loss(img, right, wrong, torch.full((8,), -100), 10.0) == 0
