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
from medvl.text.key_images import cited_images
from medvl.text.labeller import Labeller
from medvl.text.labels import LabelSpace
from medvl.text.lexicon import Lexicon

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


def test_the_labeller_finds_concepts_the_lexicon_has_no_term_for():
    """"Hypodense lesion in the right hepatic lobe" names no lexicon term; the labeller's patterns read it as a liver
    lesion, which then counts for the vocabulary's liver-lesion concept (negated and hedged ones as such)."""
    reports = ["There is a 2.1 cm hypodense lesion in the right hepatic lobe.", "Hepatic lesion in the left hepatic lobe.",
               "No focal liver lesion.", "Possible 1.0 cm hypodense lesion in the right hepatic lobe."]  # fmt: skip
    plain = ConceptVocabulary.from_reports(reports, categories=["finding"])
    assert plain.names == ["liver lesion"] and plain.targets(reports)[:, 0].tolist()[:3] == [0.0, 1.0, 0.0]
    labelled = ConceptVocabulary.from_reports(reports, categories=["finding"], labeller=Labeller(LabelSpace.chest_abdomen_ct()))
    targets = labelled.targets(reports)[:, 0]
    assert targets[:3].tolist() == [1.0, 1.0, 0.0] and math.isnan(targets[3])


def test_key_images_belong_to_the_findings_asserted_in_their_sentence():
    vocabulary = ConceptVocabulary(["lung nodule", "liver lesion", "pleural effusion"], Lexicon.default(),
                                   Labeller(LabelSpace.chest_abdomen_ct()))  # fmt: skip
    reports = [
        "FINDINGS: There is a 2.2 cm pulmonary nodule in the right upper lobe (series 2, image 34). No pleural "
        "effusion (image 12). Liver: 1.7 cm hypodense lesion in the right hepatic lobe (se 2, im 40).",
        "Possible 1.0 cm nodule in the left lower lobe (image 3). Small right pleural effusion.",
        "A 1.2 cm nodule is noted in the left upper lobe (series 2 image #7).",
    ]
    assert vocabulary.key_images(reports).tolist() == [[34, 40, 0], [0, 0, 0], [7, 0, 0]]
    text = "Nodule (image 0); see img. 12 and im #5, not images 3-4."
    assert cited_images(text) == [(text.index("img"), 12), (text.index("im #"), 5)]


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
