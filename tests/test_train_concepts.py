"""The concept vocabulary of the patch-concept alignment term, and the zero-shot score it trains."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from medvl.infer.embed import encode_texts
from medvl.infer.zeroshot import concept_scores
from medvl.models.registry import build_model
from medvl.text.concepts import ConceptVocabulary

REPORTS = [
    "Moderate left pleural effusion. No pneumothorax.",
    "Small right pleural effusion. Cardiomegaly.",
    "Possible pneumothorax at the apex.",
    "No acute findings.",
]


def test_vocabulary_counts_asserted_concepts_and_targets_follow_negation_and_uncertainty():
    vocabulary = ConceptVocabulary.from_reports(REPORTS)
    assert vocabulary.names[0] == "pleural effusion"  # asserted twice, the most frequent
    assert "pneumothorax" not in vocabulary.names  # negated once, uncertain once: never asserted
    assert vocabulary.for_observation("Pleural Effusion") == "pleural effusion"
    assert vocabulary.for_observation("Pneumothorax") is None
    targets = ConceptVocabulary(["pleural effusion", "pneumothorax"], vocabulary.lexicon).targets(REPORTS)
    assert targets[:, 0].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert targets[0, 1] == 0.0 and math.isnan(targets[2, 1]) and targets[3, 1] == 0.0
    with pytest.raises(ValueError, match="no lexicon concept is asserted"):
        ConceptVocabulary.from_reports(["No acute findings."])


def test_concept_scores_are_the_best_regions_similarity():
    torch.manual_seed(0)
    model = build_model("tiny-resnet18").eval()
    images = torch.rand(3, 1, 64, 64)
    scores = concept_scores(model, images, ["pleural effusion", "cardiomegaly"])
    with torch.no_grad():
        _, patches, _ = model.image_and_patch_embeddings(images)
        texts = F.normalize(encode_texts(model, ["pleural effusion", "cardiomegaly"], torch.device("cpu")), dim=-1)
        expected = torch.stack([(F.normalize(patches[b], dim=-1) @ texts.T).max(0).values for b in range(3)])
    assert scores.shape == (3, 2)
    torch.testing.assert_close(scores, expected)
