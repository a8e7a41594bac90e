"""Each loss against a hand-written reference (explicit loops over small tensors)."""

from __future__ import annotations

import math

import pytest
import torch

from medvl.losses import (
    ContrastiveLoss,
    clip_loss,
    concept_alignment_loss,
    concept_spread_loss,
    convirt_loss,
    label_similarity_targets,
    siglip_loss,
    soft_target_loss,
)
from medvl.models.config import ModelConfigError, resolve_loss_config


@pytest.fixture(autouse=True)
def _float64():
    """References are computed in Python floats; compare in double precision."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _pairs(n: int = 5, d: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))))


def _nce(queries: torch.Tensor, keys: torch.Tensor, i: int, scale: float) -> float:
    """-log softmax over keys of the scaled cosine similarity, at the positive key i."""
    logits = [scale * _cos(queries[i], keys[k]) for k in range(len(keys))]
    return -(logits[i] - math.log(sum(math.exp(v) for v in logits)))


def test_convirt_matches_hand_computed_reference():
    img, txt = _pairs()
    tau, lam = 0.1, 0.75
    expected = sum(lam * _nce(img, txt, i, 1 / tau) + (1 - lam) * _nce(txt, img, i, 1 / tau) for i in range(5)) / 5
    assert convirt_loss(img, txt).item() == pytest.approx(expected, rel=1e-10)
    # the defaults are ConVIRT's: tau 0.1, lambda 0.75 (a different lambda gives a different value)
    assert convirt_loss(img, txt, lam=0.5).item() != pytest.approx(expected, rel=1e-6)


def test_convirt_scale_invariant_inputs_are_normalised():
    img, txt = _pairs()
    assert convirt_loss(3 * img, 0.5 * txt).item() == pytest.approx(convirt_loss(img, txt).item(), rel=1e-12)


def test_clip_matches_reference_and_clamps_scale_at_100():
    img, txt = _pairs(seed=1)
    log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    s = 1 / 0.07
    expected = sum(_nce(img, txt, i, s) + _nce(txt, img, i, s) for i in range(5)) / 10
    loss = clip_loss(img, txt, log_scale)
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    loss.backward()
    assert log_scale.grad is not None and log_scale.grad.item() != 0
    capped = sum(_nce(img, txt, i, 100.0) + _nce(txt, img, i, 100.0) for i in range(5)) / 10
    assert clip_loss(img, txt, torch.tensor(math.log(1000.0))).item() == pytest.approx(capped, rel=1e-10)


def test_siglip_matches_reference():
    img, txt = _pairs(seed=2)
    s, b = 10.0, -10.0
    expected = 0.0
    for i in range(5):
        for j in range(5):
            z = 1.0 if i == j else -1.0
            expected -= math.log(1 / (1 + math.exp(-z * (s * _cos(img[i], txt[j]) + b))))
    expected /= 5
    assert siglip_loss(img, txt, torch.tensor(math.log(s)), torch.tensor(b)).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(
    "loss",
    [
        lambda i, t, r: convirt_loss(i, t, rows=r),
        lambda i, t, r: clip_loss(i, t, torch.tensor(2.0), rows=r),
        lambda i, t, r: siglip_loss(i, t, torch.tensor(2.0), torch.tensor(-1.0), rows=r),
        lambda i, t, r: soft_target_loss(i, t, torch.tensor([[1.0, 0], [1, 0], [0, 1], [float("nan")] * 2, [0, 0], [1, 1]]), rows=r),
    ],
    ids=["convirt", "clip", "siglip", "soft_target"],
)
def test_row_shares_average_to_the_full_loss(loss):
    """What local_loss relies on: the mean of the per-rank shares equals the full-batch loss."""
    img, txt = _pairs(n=6, seed=3)
    shares = [loss(img, txt, slice(k, k + 2)) for k in (0, 2, 4)]
    assert (sum(shares) / 3).item() == pytest.approx(loss(img, txt, None).item(), rel=1e-10)


def test_label_targets_equal_mass_for_identical_labels_and_identity_for_unknown():
    nan = float("nan")
    labels = torch.tensor(
        [
            [1.0, 0.0, nan],  # pneumonia
            [1.0, nan, 0.0],  # pneumonia (same findings, other negatives spelled out)
            [0.0, 1.0, nan],  # effusion
            [nan, nan, nan],  # unknown study
            [0.0, 0.0, 0.0],  # normal
            [nan, 0.0, nan],  # normal
        ]
    )
    t = label_similarity_targets(labels, target_tau=0.1)
    assert torch.allclose(t.sum(dim=1), torch.ones(6))
    assert t[0, 0].item() == pytest.approx(t[0, 1].item()) and t[0, 0] > 10 * t[0, 2]
    assert t[4, 4].item() == pytest.approx(t[4, 5].item()) and t[4, 4] > 10 * t[4, 0]
    assert torch.equal(t[3], torch.tensor([0.0, 0, 0, 1, 0, 0]))
    assert t[0, 3] < t[0, 0] / 10  # the unknown study is not treated like a match


def test_label_targets_match_hand_computed_softmax():
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])  # -1 = uncertain, counted as 1 by default
    vectors = [[1, 0, 0], [1, 1, 0], [1, 0, 0]]  # plus the "no finding" column
    t = label_similarity_targets(labels, target_tau=0.5)
    for i in range(3):
        sims = [_cos(torch.tensor(vectors[i], dtype=torch.float64), torch.tensor(vectors[j], dtype=torch.float64)) / 0.5 for j in range(3)]
        z = sum(math.exp(v) for v in sims)
        for j in range(3):
            assert t[i, j].item() == pytest.approx(math.exp(sims[j]) / z, rel=1e-10)


def test_soft_target_loss_matches_reference():
    img, txt = _pairs(n=4, seed=4)
    labels = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [float("nan"), float("nan")]])
    t = label_similarity_targets(labels, target_tau=0.1)
    tau = 0.1
    expected = 0.0
    for i in range(4):
        for queries, keys in ((img, txt), (txt, img)):
            logits = [_cos(queries[i], keys[k]) / tau for k in range(4)]
            lse = math.log(sum(math.exp(v) for v in logits))
            expected += 0.5 * sum(-t[i, j].item() * (logits[j] - lse) for j in range(4))
    expected /= 4
    assert soft_target_loss(img, txt, labels, tau=tau).item() == pytest.approx(expected, rel=1e-10)


def test_soft_target_with_all_unknown_labels_is_clip_with_fixed_temperature():
    img, txt = _pairs(seed=5)
    unknown = torch.full((5, 3), float("nan"))
    assert soft_target_loss(img, txt, unknown, tau=0.1).item() == pytest.approx(convirt_loss(img, txt, lam=0.5).item(), rel=1e-10)


def test_concept_alignment_matches_reference_and_ignores_unknown_pairs():
    g = torch.Generator().manual_seed(6)
    patches, concepts = torch.randn(2, 3, 4, generator=g), torch.randn(2, 4, generator=g)
    targets = torch.tensor([[1.0, 0.0], [float("nan"), 1.0]])
    s, b = 10.0, -5.0
    terms = []
    for i in range(2):
        for c in range(2):
            if math.isnan(targets[i, c].item()):
                continue
            m = max(_cos(patches[i, n], concepts[c]) for n in range(3))
            p = 1 / (1 + math.exp(-(s * m + b)))
            y = targets[i, c].item()
            terms.append(-(y * math.log(p) + (1 - y) * math.log(1 - p)))
    expected = sum(terms) / 4  # the unknown pair adds nothing but counts: a mean over images
    got = concept_alignment_loss(patches, concepts, targets, torch.tensor(math.log(s)), torch.tensor(b))
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_concept_alignment_over_a_volume_ignores_padded_slices_regions():
    """A volume's regions are all its slices' regions; the masked ones (padding) can never be the best match."""
    g = torch.Generator().manual_seed(8)
    real, concepts = torch.randn(2, 6, 4, generator=g), torch.randn(3, 4, generator=g)
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    padded = torch.cat([real, concepts[None].expand(2, 3, 4) * 5], dim=1)  # padding that would match perfectly
    mask = torch.tensor([[False] * 6 + [True] * 3] * 2)
    plain = concept_alignment_loss(real, concepts, targets)
    assert concept_alignment_loss(padded, concepts, targets, patch_mask=mask).item() == pytest.approx(plain.item(), rel=1e-6)
    assert concept_alignment_loss(padded, concepts, targets).item() != pytest.approx(plain.item(), rel=1e-3)


def test_concept_alignment_with_a_key_image_adds_a_pair_for_the_cited_slice():
    """Volumes of 3 slices x 2 regions: where the report cites a key slice for a positive concept, that slice's
    best region must match it too (a pair of its own, target 1), besides the volume's best region."""
    g = torch.Generator().manual_seed(9)
    patches, concepts = torch.randn(2, 6, 4, generator=g), torch.randn(2, 4, generator=g)
    targets = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    key_slices = torch.tensor([[2, -1], [-1, 0]])
    s, b = 10.0, -5.0

    def bce(regions, i, c, y):
        p = 1 / (1 + math.exp(-(s * max(_cos(patches[i, n], concepts[c]) for n in regions) + b)))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    terms = [bce(range(6), i, c, targets[i, c].item()) for i in range(2) for c in range(2)]
    terms += [bce(range(4, 6), 0, 0, 1.0), bce(range(0, 2), 1, 1, 1.0)]
    got = concept_alignment_loss(patches, concepts, targets, torch.tensor(math.log(s)), torch.tensor(b),
                                 key_slices=key_slices, slice_regions=2)  # fmt: skip
    assert got.item() == pytest.approx(sum(terms) / 4, rel=1e-10)
    with pytest.raises(ValueError, match="slice_regions"):
        concept_alignment_loss(patches, concepts, targets, key_slices=key_slices, slice_regions=4)


def test_slice_negatives_add_the_mean_over_every_real_slice_of_a_volume_without_the_concept():
    g = torch.Generator().manual_seed(4)
    patches, concepts = torch.randn(2, 6, 4, generator=g, dtype=torch.float64), torch.randn(2, 4, generator=g, dtype=torch.float64)
    targets = torch.tensor([[1.0, 0.0], [0.0, float("nan")]], dtype=torch.float64)
    patch_mask = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])  # volume 1: its third slice is padding
    s, b = 10.0, -5.0

    def bce(regions, i, c, y):
        p = 1 / (1 + math.exp(-(s * max(_cos(patches[i, n], concepts[c]) for n in regions) + b)))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    slices = {0: [range(0, 2), range(2, 4), range(4, 6)], 1: [range(0, 2), range(2, 4)]}
    volume_pairs = [bce(range(6), 0, 0, 1.0), bce(range(6), 0, 1, 0.0), bce(range(4), 1, 0, 0.0)]
    slice_pairs = [sum(bce(r, i, c, 0.0) for r in slices[i]) / len(slices[i]) for i, c in ((0, 1), (1, 0))]
    got = concept_alignment_loss(patches, concepts, targets, torch.tensor(math.log(s)), torch.tensor(b),
                                 patch_mask=patch_mask, slice_regions=2, slice_negatives=True)  # fmt: skip
    assert got.item() == pytest.approx(sum(volume_pairs + slice_pairs) / 4, rel=1e-10)
    volume = concept_alignment_loss(patches, concepts, targets, torch.tensor(math.log(s)), torch.tensor(b), patch_mask=patch_mask)
    assert volume.item() == pytest.approx(sum(volume_pairs) / 4, rel=1e-10)
    outputs = {"patches": patches, "patch_mask": patch_mask, "slice_regions": 2, "image": patches[:, 0],
               "concept_logit_scale": torch.tensor(math.log(s)), "concept_logit_bias": torch.tensor(b)}  # fmt: skip
    through_config = ContrastiveLoss({"weights": {"convirt": 0.0, "concept": 1.0}, "concept_negatives": "slices"})
    assert through_config(outputs, concept_emb=concepts, concept_targets=targets).total.item() == pytest.approx(got.item())


def test_smooth_pooling_is_the_log_sum_exp_of_cosines_and_reaches_regions_below_the_best():
    g = torch.Generator().manual_seed(11)
    patches = torch.randn(2, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    concepts = torch.randn(2, 4, generator=g, dtype=torch.float64)
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    s, b, t = 10.0, -5.0, 0.05

    def bce(i, c, y):
        pooled = t * math.log(sum(math.exp(_cos(patches[i, n].detach(), concepts[c]) / t) for n in range(5)))
        p = 1 / (1 + math.exp(-(s * pooled + b)))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    smooth = concept_alignment_loss(patches, concepts, targets, torch.tensor(math.log(s)), torch.tensor(b), pool_temperature=t)
    assert smooth.item() == pytest.approx(sum(bce(i, c, targets[i, c].item()) for i in range(2) for c in range(2)) / 4, rel=1e-10)
    smooth.backward()
    assert bool((patches.grad.abs().sum(-1) > 0).all())  # every region learns
    patches.grad = None
    concept_alignment_loss(patches, concepts, targets, torch.tensor(math.log(s)), torch.tensor(b)).backward()
    assert int((patches.grad.abs().sum(-1) > 0).sum()) <= 4  # the hard maximum: only each pair's best region
    through_config = ContrastiveLoss({"weights": {"convirt": 0.0, "concept": 1.0}, "concept_pool_temperature": t})
    outputs = {"patches": patches, "image": patches[:, 0], "concept_logit_scale": torch.tensor(math.log(s)), "concept_logit_bias": torch.tensor(b)}
    assert through_config(outputs, concept_emb=concepts, concept_targets=targets).total.item() == pytest.approx(smooth.item())
    with pytest.raises(ModelConfigError, match="concept_pool_temperature"):
        resolve_loss_config({"weights": {"concept": 1.0}, "concept_pool_temperature": -0.1}, "loss")


def test_concept_spread_is_the_mean_squared_positive_cosine_between_different_concepts():
    concepts = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.2]], requires_grad=True)
    pairs = [1 / math.sqrt(2), 0.0, 0.0]  # (0, 1); (0, 2) and (1, 2) point apart: no penalty
    assert concept_spread_loss(concepts).item() == pytest.approx(2 * sum(c * c for c in pairs) / 6, rel=1e-6)
    concept_spread_loss(concepts).backward()
    assert concepts.grad[2].abs().sum() == 0 and concepts.grad[0].abs().sum() > 0
    assert concept_spread_loss(torch.eye(3)).item() == 0.0
    loss = ContrastiveLoss({"weights": {"convirt": 0.0, "concept": 1.0, "concept_spread": 0.5}})
    out = loss({"patches": torch.randn(2, 3, 2), "concept_logit_scale": torch.tensor(2.3), "concept_logit_bias": torch.tensor(-5.0),
                "image": torch.randn(2, 2)}, concept_emb=concepts.detach(), concept_targets=torch.zeros(2, 3))  # fmt: skip
    assert not loss.needs_text
    assert out.total.item() == pytest.approx(out.terms["concept"].item() + 0.5 * out.terms["concept_spread"].item())
    with pytest.raises(ModelConfigError, match="concept_spread"):
        resolve_loss_config({"weights": {"clip": 1.0, "concept_spread": 1.0}}, "loss")


def test_concept_alignment_without_known_targets_is_zero_but_differentiable():
    patches = torch.randn(2, 3, 4, requires_grad=True)
    loss = concept_alignment_loss(patches, torch.randn(2, 4), torch.full((2, 2), float("nan")))
    loss.backward()
    assert loss.item() == 0.0 and patches.grad is not None


def test_contrastive_loss_weights_terms():
    img, txt = _pairs(seed=7)
    labels = torch.tensor([[1.0], [0.0], [1.0], [0.0], [float("nan")]])
    outputs = {"image": img, "text": txt, "logit_scale": torch.tensor(2.0), "logit_bias": torch.tensor(-3.0)}
    loss = ContrastiveLoss({"weights": {"convirt": 0.5, "clip": 2.0, "siglip": 0.25, "soft_target": 1.0}})
    out = loss(outputs, labels=labels)
    expected = {
        "convirt": convirt_loss(img, txt),
        "clip": clip_loss(img, txt, torch.tensor(2.0)),
        "siglip": siglip_loss(img, txt, torch.tensor(2.0), torch.tensor(-3.0)),
        "soft_target": soft_target_loss(img, txt, labels),
    }
    assert set(out.terms) == set(expected)
    for name, value in expected.items():
        assert out.terms[name].item() == pytest.approx(value.item(), rel=1e-12)
    total = 0.5 * expected["convirt"] + 2 * expected["clip"] + 0.25 * expected["siglip"] + expected["soft_target"]
    assert out.total.item() == pytest.approx(total.item(), rel=1e-12)


def test_concept_term_alone_needs_no_report_embeddings():
    """Stage 2d of the volume recipe (concept term only): the reports are not encoded, and the loss needs no text."""
    g = torch.Generator().manual_seed(9)
    patches, concepts = torch.randn(2, 3, 4, generator=g), torch.randn(2, 4, generator=g)
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    outputs = {"image": torch.randn(2, 4, generator=g), "patches": patches,
               "concept_logit_scale": torch.tensor(math.log(10.0)), "concept_logit_bias": torch.tensor(-5.0)}  # fmt: skip
    alone = ContrastiveLoss({"weights": {"convirt": 0.0, "concept": 1.0}})
    assert not alone.needs_text and ContrastiveLoss({"weights": {"convirt": 0.0, "clip": 1.0, "concept": 1.0}}).needs_text
    out = alone(outputs, concept_emb=concepts, concept_targets=targets)
    assert set(out.terms) == {"concept"}
    assert out.total.item() == pytest.approx(concept_alignment_loss(patches, concepts, targets).item(), rel=1e-6)
    with pytest.raises(ValueError, match=r"outputs\['text'\] is missing"):
        ContrastiveLoss({"weights": {"convirt": 1.0}})(outputs)


def test_contrastive_loss_refuses_missing_inputs_and_bad_configs():
    img, txt = _pairs()
    with pytest.raises(ValueError, match="logit_scale"):
        ContrastiveLoss({"weights": {"convirt": 0.0, "clip": 1.0}})({"image": img, "text": txt})
    with pytest.raises(ValueError, match="labels"):
        ContrastiveLoss({"weights": {"soft_target": 1.0}})({"image": img, "text": txt})
    with pytest.raises(ValueError, match="patches"):
        ContrastiveLoss({"weights": {"concept": 1.0}})({"image": img, "text": txt})
    with pytest.raises(ValueError, match="gather_with_grad"):
        ContrastiveLoss(local_loss=True, gather_with_grad=False)
    with pytest.raises(ModelConfigError, match=r"loss\.weights\.clipp.*unknown key"):
        resolve_loss_config({"weights": {"clipp": 1.0}}, "loss")
    with pytest.raises(ModelConfigError, match="positive weight"):
        resolve_loss_config({"weights": {"convirt": 0.0}}, "loss")
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        convirt_loss(img, txt[:3])
