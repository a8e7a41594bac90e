"""Native 3D volume encoder (the baseline to slice pooling): resampling, padding, regions, gradients, configs."""

from __future__ import annotations

import pytest
import torch

from medvl.infer.embed import uses_slices
from medvl.losses import concept_alignment_loss
from medvl.models import ModelConfigError, build_model, load_pretrained
from medvl.models.volume3d import resample_depth
from tests.test_models_registry import torch_single_thread  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("tiny-resnet18-3d")


def _volume(s: int, size: int = 64, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, s, 1, size, size, generator=g), torch.arange(s, dtype=torch.float32)[None] * 2.5 - 30.0


def test_resampling_interpolates_the_real_slices_in_z_order():
    values = torch.tensor([[2.0, 0.0, 1.0, float("nan")]])  # slice k is filled with its value
    slices = values[:, :, None, None].expand(1, 4, 3, 3)
    z = torch.tensor([[10.0, 0.0, 5.0, -99.0]])  # sorted by z: 0, 1, 2
    pad = torch.tensor([[False, False, False, True]])
    out = resample_depth(slices, z, pad, 5)
    assert out.shape == (1, 5, 3, 3)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0]))  # padding never read
    one = resample_depth(slices[:, :1], z[:, :1], pad[:, :1], 4)
    assert torch.equal(one, slices[:, :1].expand(1, 4, 3, 3))  # a 1-slice volume is repeated
    with pytest.raises(ValueError, match="volume 0 has no real slice"):
        resample_depth(slices, z, torch.ones_like(pad), 5)


def test_shapes_padding_and_slice_order_do_not_change_the_volume(model):
    slices, z = _volume(10)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    padded = torch.cat([slices[:, order], torch.full((1, 3, 1, 64, 64), float("nan"))], dim=1)
    padded_z = torch.cat([z[:, order], torch.zeros(1, 3)], dim=1)
    mask = torch.tensor([[False] * 10 + [True] * 3])
    with torch.no_grad():
        plain = model.eval().encode_volume(slices, z, return_regions=True)
        shuffled = model.encode_volume(padded, padded_z, mask, return_regions=True)
    assert plain.embedding.shape == (1, 128) and plain.slice_embeddings is None
    # depth 32 through a stem striding only in-plane: 2 depth cells; 64 px through stride 32: 2 x 2 regions
    assert plain.region_embeddings.shape == (1, 2, 4, 128)
    torch.testing.assert_close(shuffled.embedding, plain.embedding, atol=1e-5, rtol=0)
    torch.testing.assert_close(shuffled.region_embeddings, plain.region_embeddings, atol=1e-5, rtol=0)
    torch.testing.assert_close(shuffled.slice_weights, torch.tensor([[0.1] * 10 + [0.0] * 3]))
    assert torch.allclose(plain.region_embeddings.norm(dim=-1), torch.ones(1, 2, 4), atol=1e-5)


def test_training_step_trains_the_3d_tower_with_the_concept_loss(model):
    model.train().zero_grad()
    slices, z = _volume(12)
    batch = torch.cat([slices, torch.cat([slices[:, :7], torch.zeros(1, 5, 1, 64, 64)], dim=1)])
    mask = torch.tensor([[False] * 12, [False] * 7 + [True] * 5])
    out = model(slices=batch, z_mm=z.expand(2, -1), pad_mask=mask, return_patches=True, **model.tokenize(["a b", "c"]))
    assert out["patches"].shape == (2, 8, 128) and not bool(out["patch_mask"].any())  # 2 x 2 x 2 cells, no padding
    concepts = model.encode_text(**model.tokenize(["effusion", "nodule"]))
    loss = (out["image"] @ out["text"].T).logsumexp(dim=1).sum() + concept_alignment_loss(
        out["patches"], concepts, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), patch_mask=out["patch_mask"]
    )
    loss.backward()
    for name, param in model.named_parameters():
        if name.startswith(("image_encoder.", "image_projection.")):  # the 2D tower: frozen, no DDP trouble
            assert not param.requires_grad and param.grad is None, name
        elif name.startswith(("volume_encoder.", "volume_projection.", "text_encoder.")):
            assert param.grad is not None and bool(param.grad.abs().sum() > 0), name
    assert not model.image_encoder.training and model.volume_encoder.training
    groups = model.parameter_groups(1e-3)
    trained = {id(p) for group in groups for p in group["params"]}
    assert all(id(p) in trained for p in model.volume_encoder.parameters())
    assert not any(id(p) in trained for p in model.image_encoder.parameters())
    assert model.encodes_volumes and not model.pools_slices and uses_slices(model)


def test_two_dimensional_images_still_use_the_2d_tower(model):
    images = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert model.eval().encode_image(images).shape == (2, 128)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"slice_pooling": {"mode": "mean", "num_layers": 0}}, r"volume_encoder: a model encodes volumes by slice pooling or with a 3D encoder"),
        ({"volume_encoder": {"depth": 1}}, r"volume_encoder\.depth: must be at least 2"),
        ({"volume_encoder": {"arch": "vit"}}, r"volume_encoder\.arch: 'vit' is not one of resnet18, resnet50"),
        ({"volume_encoder": {"norm": "layer"}}, r"volume_encoder\.norm: 'layer' is not one of"),
        ({"volume_encoder": {"stride": 2}}, r"volume_encoder\.stride: unknown key"),
        ({"schedule": {"stage": "volume"}}, r"schedule\.stage: 'volume' needs a slice_pooling section"),
    ],
)
def test_config_errors_name_the_field(overrides, message):
    with pytest.raises(ModelConfigError, match=message):
        build_model("tiny-resnet18-3d", **overrides)


def test_save_and_load_round_trip(model, tmp_path):
    slices, z = _volume(5)
    with torch.no_grad():
        expected = model.eval().encode_volume(slices, z).embedding
    model.save_pretrained(tmp_path / "saved")
    loaded = load_pretrained(tmp_path / "saved").eval()
    assert loaded.config["volume_encoder"] == model.config["volume_encoder"]
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_volume(slices, z).embedding, expected, atol=1e-6, rtol=0)
