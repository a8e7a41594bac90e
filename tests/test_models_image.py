"""Image encoders and the joint-space model on 2D images."""

from __future__ import annotations

import pytest
import torch

from medvl.losses import ContrastiveLoss
from medvl.models import build_model
from medvl.models.image import build_image_encoder, resolve_image_config
from tests.test_models_registry import torch_single_thread  # noqa: F401 (fixture)

TINY_ARCHS = {
    "resnet18": {"arch": "resnet18", "image_size": 64, "widen_factor": 0.25},
    "resnet50": {"arch": "resnet50", "image_size": 64, "widen_factor": 0.125},
    "densenet121": {"arch": "densenet121", "image_size": 64, "init_features": 16, "growth_rate": 8},
    "vit": {"arch": "vit", "image_size": 64, "hidden_size": 32, "mlp_dim": 64, "num_layers": 4, "num_heads": 2},
}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model("tiny-resnet18").eval()


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_encoders_expose_pyramid_feature_map_and_global_feature(arch):
    torch.manual_seed(0)
    enc = build_image_encoder(resolve_image_config(TINY_ARCHS[arch], "image")).eval()
    images = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        pyramid, fmap, pooled = enc.feature_pyramid(images), enc.feature_map(images), enc(images)
    assert torch.equal(pyramid[-1], fmap)
    assert fmap.shape[:2] == (2, enc.out_channels) and pooled.shape == (2, enc.out_channels)
    assert torch.allclose(pooled, fmap.mean(dim=(2, 3)), atol=1e-6)
    sizes = [m.shape[-1] for m in pyramid]
    if arch == "vit":
        assert sizes == [4, 4, 4, 4]  # 64 / patch 16
    else:
        assert sizes == [16, 8, 4, 2]  # the stride-2 stem: stride 4 after the stem, 32 at the end


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_every_encoder_parameter_gets_a_gradient(arch):
    """Unused parameters (a classifier left in place) would make DDP fail."""
    enc = build_image_encoder(resolve_image_config(TINY_ARCHS[arch], "image"))
    enc(torch.randn(2, 1, 64, 64)).sum().backward()
    assert [n for n, p in enc.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize(("arch", "norm"), [("resnet18", "group"), ("densenet121", "instance")])
def test_norm_variants_replace_every_batch_norm(arch, norm):
    enc = build_image_encoder(resolve_image_config({**TINY_ARCHS[arch], "norm": norm}, "image")).train()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in enc.modules())
    images = torch.randn(3, 1, 64, 64)
    # without batch statistics an image's feature does not depend on the rest of the batch, even in training
    assert torch.allclose(enc(images)[:1], enc(images[:1]), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.randn(2, 3, 64, 64), r"expected a \(B, 1, H, W\) single-channel batch, got \(2, 3, 64, 64\)"),
        (torch.randn(1, 64, 64), r"single-channel batch, got \(1, 64, 64\)"),
        (torch.zeros(2, 1, 64, 64, dtype=torch.uint8), "floating-point pixels"),
    ],
)
def test_bad_image_batches_are_refused(tiny, images, message):
    with pytest.raises(ValueError, match=message):
        tiny.encode_image(images)


def test_vit_refuses_other_sizes():
    enc = build_image_encoder(resolve_image_config(TINY_ARCHS["vit"], "image"))
    with pytest.raises(ValueError, match="ViT expects 64x64 pixels, got \\(96, 96\\)"):
        enc(torch.randn(1, 1, 96, 96))


def test_embeddings_are_normalised_and_patches_share_the_space(tiny):
    images = torch.randn(3, 1, 128, 128)
    with torch.no_grad():
        emb = tiny.encode_image(images)
        glob, patches, grid = tiny.image_and_patch_embeddings(images)
        patch_only, grid_only = tiny.patch_embeddings(images)
    assert emb.shape == (3, 128) and torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(glob, emb, atol=1e-6)
    assert grid == grid_only == (4, 4) and patches.shape == (3, 16, 128)
    assert torch.equal(patches, patch_only)
    assert torch.allclose(patches.norm(dim=-1), torch.ones(3, 16), atol=1e-5)
    assert [m.shape[1] for m in tiny.feature_pyramid(images)] == [16, 32, 64, 128]


def test_forward_returns_what_the_losses_need(tiny):
    batch = tiny.tokenize(["No acute findings.", "Left lower lobe consolidation."])
    with torch.no_grad():
        out = tiny(images=torch.randn(2, 1, 128, 128), return_patches=True, **batch)
    assert out["image"].shape == out["text"].shape == (2, 128)
    assert out["patches"].shape == (2, 16, 128) and out["grid"] == (4, 4)
    assert out["logit_scale"] is None  # ConVIRT uses a fixed temperature
    with pytest.raises(ValueError, match="exactly one of images"):
        tiny(**batch)


def test_one_training_step_reaches_every_trainable_parameter():
    torch.manual_seed(0)
    model = build_model("tiny-resnet18", loss={"weights": {"convirt": 1.0, "siglip": 0.5, "concept": 0.5}}).train()
    texts = ["No acute findings.", "Left lower lobe consolidation.", "Cardiomegaly.", "Small effusion."]
    concepts = model.tokenize(["consolidation", "effusion"])
    out = model(images=torch.randn(4, 1, 128, 128), return_patches=True, **model.tokenize(texts))
    targets = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    loss = ContrastiveLoss(model.config["loss"])(out, concept_emb=model.encode_text(**concepts), concept_targets=targets)
    loss.total.backward()
    assert set(loss.terms) == {"convirt", "siglip", "concept"}
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []
    groups = model.parameter_groups(1e-4)
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)
