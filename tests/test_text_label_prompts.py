"""Label prompts (CXR-CLIP-style training texts from a study's labels) and their place in the token bank."""

import numpy as np
import pytest

from medvl.data.cache import CachedCohort
from medvl.text.label_prompts import NEGATIVE, POLARITY_PAIRS, POSITIVE, LabelPrompts
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
    statements, negations = zip(*POLARITY_PAIRS, strict=True)
    assert not set(statements) & set(POSITIVE_TEMPLATES) and not set(negations) & set(NEGATIVE_TEMPLATES)


def test_polarity_pairs_differ_only_by_the_negation_which_the_labeller_reads():
    labeller = Labeller()
    for name, pairs in LabelPrompts().statement_pairs(["Pneumothorax", "Lung Lesion", "Cardiomegaly"]).items():
        for statement, negation in pairs:
            assert set(statement.lower().split()) < set(negation.lower().split()), (statement, negation)
            assert labeller.label(statement).get(name) == 1 and labeller.label(negation).get(name) == 0, negation


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


def test_polarity_bank_draws_a_statement_and_its_negation_of_every_finding_with_the_right_targets(tiny_cache):
    from medvl.data.pairs import cached_report_text
    from medvl.text.tokenizer import train_wordpiece
    from medvl.train.text_ids import PolarityBank

    cohort = CachedCohort(tiny_cache)
    tokenizer = train_wordpiece([cached_report_text(cohort, i) for i in range(len(cohort))], vocab_size=1000)
    space = list(cohort.label_space)
    bank = PolarityBank.build(space, tokenizer, 32)
    assert "No Finding" not in [space[c] for c in bank.columns] and len(bank.columns) >= 5
    labels = np.full((64, len(space)), np.nan, dtype=np.float32)
    labels[:, bank.columns] = np.tile([1.0, 0.0, -1.0, np.nan], 16)[:, None]
    ids, mask, targets = bank.draw(labels, np.arange(64, dtype=np.uint64) * 7919)
    findings = len(bank.columns)
    assert ids.shape[0] == 2 * findings and mask.shape == ids.shape and targets.shape == (64, findings)
    assert (targets == np.array([0, 1, -100, 1] * 16)[:, None]).all()
    texts = [tokenizer.decode(row[row != tokenizer.pad_token_id], skip_special_tokens=True) for row in ids]
    statements, negations = texts[:findings], texts[findings:]
    assert not any(" no " in s or " not " in s for s in statements)
    assert all(" no " in n or " not " in n for n in negations)
    draws = [bank.draw(labels, np.array([seed], dtype=np.uint64))[0] for seed in range(40)]
    statements = {tuple(d[0]) for d in draws}
    assert len(statements) > 1  # batches see different phrasings of a finding
    assert len({(tuple(d[0]), tuple(d[findings])) for d in draws}) > len(statements)  # negations drawn apart


def test_polarity_bank_leaves_out_findings_training_never_has(tiny_cache):
    from medvl.data.pairs import cached_report_text
    from medvl.text.tokenizer import train_wordpiece
    from medvl.train.text_ids import PolarityBank

    cohort = CachedCohort(tiny_cache)
    tokenizer = train_wordpiece([cached_report_text(cohort, i) for i in range(len(cohort))], vocab_size=1000)
    space = list(cohort.label_space)
    labels = np.zeros((10, len(space)), dtype=np.float32)
    labels[3, space.index("Pneumothorax")] = 1
    assert [space[c] for c in PolarityBank.build(space, tokenizer, 32, labels).columns] == ["Pneumothorax"]
    with pytest.raises(ValueError, match="no finding to train"):
        PolarityBank.build(space, tokenizer, 32, np.zeros_like(labels))


def test_polarity_loss_prefers_the_true_statement_of_every_finding():
    import torch

    from medvl.losses import polarity_loss

    img = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    right = (img + 0.1 * torch.randn(8, 16))[:, None].expand(8, 3, 16)
    wrong = -right
    targets = torch.zeros(8, 3, dtype=torch.long)
    assert polarity_loss(img, right, wrong, targets, 10.0) < 0.01 < polarity_loss(img, wrong, right, targets, 10.0)
    assert polarity_loss(img, right, wrong, torch.full((8, 3), -100), 10.0) == 0


def test_polarity_loss_weighs_a_rare_present_finding_like_its_absent_images():
    import torch

    from medvl.losses import polarity_loss

    img = torch.nn.functional.normalize(torch.randn(10, 16), dim=-1)
    statement = img[:, None]
    targets = torch.ones(10, 1, dtype=torch.long)
    targets[0] = 0  # one image of ten has the finding, and the embeddings favour "absent" for every image
    loss = polarity_loss(img, -statement, statement, targets, 10.0)
    wrong_one = torch.nn.functional.cross_entropy(torch.tensor([[-10.0, 10.0]]), torch.tensor([0]))
    assert loss == pytest.approx(wrong_one.item() / 2, rel=1e-4)  # half the weight, not a tenth
