"""ConVIRT augmentations: shapes, seeding, per-volume consistency, and each step's effect."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medvl.augment import (
    CROP_TRIES,
    AugmentStrength,
    ConvirtAugment,
    augment_batch,
    crop_boxes,
    draw_batch,
    seed_uniforms,
)
from tests.test_models_registry import torch_single_thread  # noqa: F401 (fixture)

OFF = AugmentStrength(
    crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_prob=0.0, affine_prob=0.0, jitter_prob=0.0, blur_prob=0.0
)


def ramp(h: int = 64, w: int = 64) -> torch.Tensor:
    """An image whose value is its column index: flips and crops are easy to read from it."""
    return torch.arange(w, dtype=torch.float32).repeat(h, 1)[None]


def test_image_and_volume_shapes_and_types():
    aug = ConvirtAugment(32).set_random_state(0)
    assert aug(ramp(80, 60)).shape == (1, 32, 32)
    out = aug(np.random.rand(5, 1, 70, 50).astype(np.float32))
    assert isinstance(out, torch.Tensor) and type(out) is torch.Tensor and out.shape == (5, 1, 32, 32)
    with pytest.raises(ValueError, match=r"expects an image \(1, H, W\) or slices \(S, 1, H, W\)"):
        aug(torch.rand(3, 64, 64))


def test_same_seed_same_result_other_seed_other_result():
    image = torch.rand(1, 64, 64)
    first = ConvirtAugment(48).set_random_state(7)(image)
    again = ConvirtAugment(48).set_random_state(7)(image)
    other = ConvirtAugment(48).set_random_state(8)(image)
    assert torch.equal(first, again) and not torch.allclose(first, other)


def test_volume_slices_share_one_draw():
    image = torch.rand(1, 64, 64)
    alone = ConvirtAugment(32).set_random_state(3)(image)
    stack = ConvirtAugment(32).set_random_state(3)(image.expand(4, 1, 64, 64))
    for k in range(4):  # every slice gets exactly the crop, flip, affine, jitter and blur the image alone got
        assert torch.allclose(stack[k], alone, atol=1e-5)
    assert not torch.allclose(alone, ConvirtAugment(32, OFF)(image), atol=1e-2)


def test_everything_off_is_a_plain_resize():
    image = ramp()
    assert torch.allclose(ConvirtAugment(64, OFF)(image), image, atol=1e-4)


def test_flip_reverses_columns():
    flip_only = AugmentStrength(**{**OFF.__dict__, "flip_prob": 1.0})
    assert torch.equal(ConvirtAugment(64, flip_only)(ramp()), ramp().flip(-1))


def test_random_resized_crop_covers_the_configured_area():
    u = seed_uniforms(np.arange(400), 4 * CROP_TRIES)
    boxes = crop_boxes(AugmentStrength(crop_scale=(0.6, 1.0), crop_ratio=(3 / 4, 4 / 3)), u, 100, 120)
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (top + h <= 100).all() and (left >= 0).all() and (left + w <= 120).all()
    fractions, ratios = h * w / 12000, w / h
    assert 0.58 <= fractions.min() and fractions.max() <= 1.0 and np.std(fractions) > 0.05
    assert 0.7 <= ratios.min() and ratios.max() <= 1.4
    assert len({tuple(b) for b in boxes}) > 300  # positions vary too


def test_crop_fallback_on_extreme_aspect():
    u = seed_uniforms([0, 1], 4 * CROP_TRIES)
    boxes = crop_boxes(AugmentStrength(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0)), u, 10, 100)
    assert [tuple(b) for b in boxes] == [(0, 45, 10, 10)] * 2  # a whole-area square cannot fit: largest centred one


def test_seed_uniforms_depend_on_the_seed_alone():
    a = seed_uniforms([5, 6, 7], 8)
    assert np.array_equal(a[1:2], seed_uniforms([6], 8)) and np.array_equal(a, seed_uniforms([5, 6, 7], 8))
    assert ((a >= 0) & (a < 1)).all() and not np.allclose(a[0], a[1])
    assert not np.allclose(seed_uniforms([5], 8, stream=1), a[:1])  # streams are independent
    big = seed_uniforms(np.arange(20000), 2)
    assert abs(big.mean() - 0.5) < 0.01 and abs(np.corrcoef(big[:, 0], big[:, 1])[0, 1]) < 0.03


def test_batch_draws_equal_one_item_draws_and_padded_slices_stay_zero():
    strength = AugmentStrength()
    seeds = [11, 12, 13]
    images = torch.rand(3, 1, 40, 40, generator=torch.Generator().manual_seed(0))
    batch = augment_batch(images, draw_batch(strength, seeds, 40, 40, 32), 32)
    for b, seed in enumerate(seeds):
        alone = augment_batch(images[b : b + 1], draw_batch(strength, [seed], 40, 40, 32), 32)
        assert torch.allclose(batch[b], alone[0], atol=1e-5)
    volumes = torch.rand(2, 5, 40, 40, generator=torch.Generator().manual_seed(1))
    real = torch.tensor([[True] * 5, [True, True, True, False, False]])
    volumes[1, 3:] = 0
    out = augment_batch(volumes, draw_batch(strength, [1, 2], 40, 40, 32), 32, channel_mask=real)
    assert out[1, 3:].abs().max() == 0
    short = augment_batch(volumes[1:, :3], draw_batch(strength, [2], 40, 40, 32), 32)  # the real slices alone
    assert torch.allclose(out[1, :3], short[0], atol=1e-5)


def test_jitter_ranges():
    jitter = AugmentStrength(**{**OFF.__dict__, "jitter_prob": 1.0, "contrast": 0.0})
    image = torch.full((1, 16, 16), 10.0)
    values = [ConvirtAugment(16, jitter).set_random_state(s)(image).mean().item() for s in range(40)]
    assert 6.0 - 1e-4 <= min(values) and max(values) <= 14.0 + 1e-4 and max(values) - min(values) > 3


def test_blur_smooths_and_keeps_the_mean():
    blur = AugmentStrength(**{**OFF.__dict__, "blur_prob": 1.0, "blur_sigma": (2.0, 2.0)})
    noise = torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(0))
    out = ConvirtAugment(64, blur)(noise)
    assert out.std() < noise.std() / 2 and abs(out[:, 16:48, 16:48].mean() - noise[:, 16:48, 16:48].mean()) < 0.02


@pytest.mark.parametrize(
    ("field", "value"),
    [("crop_scale", (0.0, 1.0)), ("crop_scale", (0.9, 0.6)), ("flip_prob", 1.5), ("brightness", -0.1), ("blur_sigma", (0.0, 1.0))],
)
def test_invalid_strengths_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        AugmentStrength(**{field: value})


def test_real_chest_xray_keeps_its_intensity_range(realdata):
    from PIL import Image

    path = sorted((realdata / "cxr_covid" / "images").glob("*.jpg"))[0]
    pixels = torch.from_numpy(np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0)[None]
    views = [ConvirtAugment(128).set_random_state(seed)(pixels) for seed in range(3)]
    for view in views:
        assert view.shape == (1, 128, 128) and view.std() > 0.05  # anatomy, not an empty crop
        # brightness x1.4 then contrast x1.4 around a mean m in [0, 1.4]: values stay in [-0.4 m, 1.96]
        assert -0.57 < view.min() and view.max() < 1.97
    assert not torch.allclose(views[0], views[1], atol=1e-2)  # two views of one study differ
