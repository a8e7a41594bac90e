"""Slice pooling (RadCLIP adapter) and volume encoding: physical z, padding, chunking, schedule."""

from __future__ import annotations

import itertools

import pytest
import torch

from medvl.models import ModelConfigError, build_model
from medvl.models.chunking import encode_in_chunks
from medvl.models.slice_pooling import SlicePooling, ZPositionEncoding, resolve_slice_pooling_config
from tests.test_models_registry import torch_single_thread  # noqa: F401 (fixture)

COMBINATIONS = [("mean", "contextual"), ("cls", "slices"), ("cls", "contextual"), ("query", "slices"), ("query", "contextual")]


def pooling(mode: str, values: str, dim: int = 16) -> SlicePooling:
    torch.manual_seed(0)
    return SlicePooling(dim, mode=mode, values=values, num_layers=2, num_heads=4).eval()


def volume(s: int = 5, dim: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, s, dim, generator=g), (torch.arange(s, dtype=torch.float32) * 2.5 - 40.0)[None]


def test_z_encoding_is_relative_to_the_volume_centre():
    enc = ZPositionEncoding(16)
    z = torch.tensor([[-10.0, -5.0, 0.0, 5.0, 10.0]])
    none = torch.zeros_like(z, dtype=torch.bool)
    assert torch.allclose(enc(z, none), enc(z + 731.5, none), atol=1e-5)
    assert not torch.allclose(enc(z, none), enc(2 * z, none), atol=1e-3)  # 5 mm spacing differs from 10 mm
    padded = torch.tensor([[-10.0, -5.0, 0.0, 5.0, 10.0, 999.0]])
    mask = torch.tensor([[False] * 5 + [True]])
    assert torch.allclose(enc(padded, mask)[:, :5], enc(z, none), atol=1e-5)  # padding does not move the centre


@pytest.mark.parametrize(("mode", "values"), COMBINATIONS)
def test_weights_are_a_distribution_and_give_the_embedding(mode, values):
    pool = pooling(mode, values)
    x, z = volume()
    with torch.no_grad():
        emb, weights, vals = pool(x, z, torch.zeros(1, 5, dtype=torch.bool))
    assert weights.shape == (1, 5) and bool((weights >= 0).all())
    assert weights.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(emb, torch.einsum("bs,bsd->bd", weights, vals), atol=1e-6)
    if values == "slices":
        assert torch.equal(vals, x)


@pytest.mark.parametrize(("mode", "values"), COMBINATIONS)
def test_padding_does_not_change_the_embedding(mode, values):
    pool = pooling(mode, values)
    x, z = volume()
    padded_x = torch.cat([x, 1e3 * torch.randn(1, 3, 16)], dim=1)
    padded_z = torch.cat([z, torch.tensor([[1e4, -7.0, 0.0]])], dim=1)
    mask = torch.tensor([[False] * 5 + [True] * 3])
    with torch.no_grad():
        emb, weights, _ = pool(x, z, torch.zeros(1, 5, dtype=torch.bool))
        emb_p, weights_p, _ = pool(padded_x, padded_z, mask)
    assert torch.allclose(emb, emb_p, atol=1e-5)
    assert torch.allclose(weights, weights_p[:, :5], atol=1e-6) and bool((weights_p[:, 5:] == 0).all())


@pytest.mark.parametrize(("mode", "values"), COMBINATIONS)
def test_slice_order_does_not_matter_only_z_does(mode, values):
    pool = pooling(mode, values)
    x, z = volume()
    order = torch.tensor([3, 0, 4, 1, 2])
    none = torch.zeros(1, 5, dtype=torch.bool)
    with torch.no_grad():
        emb, weights, _ = pool(x, z, none)
        emb_perm, weights_perm, _ = pool(x[:, order], z[:, order], none)
        emb_flip, _, _ = pool(x, z.flip(1), none)  # same slices, z order reversed
    assert torch.allclose(emb, emb_perm, atol=1e-5) and torch.allclose(weights[:, order], weights_perm, atol=1e-6)
    if mode != "mean" or values == "contextual":
        assert not torch.allclose(emb, emb_flip, atol=1e-4)


@pytest.mark.parametrize("mode", ["mean", "cls", "query"])
def test_single_slice_with_slice_values_is_the_slice_itself(mode):
    pool = SlicePooling(16, mode=mode, values="slices", num_layers=0 if mode == "mean" else 1, num_heads=4).eval()
    x = torch.randn(3, 1, 16)
    emb, weights, _ = pool(x, torch.zeros(3, 1), torch.zeros(3, 1, dtype=torch.bool))
    assert torch.equal(emb, x[:, 0]) and torch.equal(weights, torch.ones(3, 1))


def test_several_queries_pool_by_the_mean_of_their_weights():
    torch.manual_seed(0)
    pool = SlicePooling(16, mode="query", num_queries=3, num_layers=1, num_heads=4).eval()
    x, z = volume()
    padded_x, padded_z = torch.cat([x, torch.randn(1, 2, 16)], dim=1), torch.cat([z, torch.zeros(1, 2)], dim=1)
    mask = torch.tensor([[False] * 5 + [True] * 2])
    with torch.no_grad():
        emb, weights, vals = pool(padded_x, padded_z, mask)
        context = pool.layers(padded_x.masked_fill(mask[..., None], 0.0) + pool.position(padded_z, mask),
                              src_key_padding_mask=mask)
        per_query = [(pool.score_key(context[0, :5]) @ pool.score_query(q) / 4.0).softmax(dim=0) for q in pool.query]
    assert pool.query.shape == (3, 16)
    assert torch.allclose(weights[0, :5], torch.stack(per_query).mean(dim=0), atol=1e-6)
    assert bool((weights[0, 5:] == 0).all()) and torch.allclose(emb, torch.einsum("bs,bsd->bd", weights, vals), atol=1e-6)
    assert not torch.allclose(per_query[0], per_query[1], atol=1e-3)  # the queries weigh the slices differently
    assert SlicePooling(16, mode="query", num_layers=1, num_heads=4).query.shape == (16,)  # models saved before load
    with pytest.raises(ModelConfigError, match="num_queries: only mode 'query'"):
        resolve_slice_pooling_config({"mode": "cls", "num_queries": 2}, "slice_pooling")


def test_bad_volume_inputs_are_refused():
    pool = pooling("query", "slices")
    x, z = volume()
    with pytest.raises(ValueError, match="volume 0 has no real slice"):
        pool(x, z, torch.ones(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="z_mm: positions of real slices must be finite"):
        pool(x, torch.full((1, 5), float("nan")), torch.zeros(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"z_mm: expected shape \(1, 5\)"):
        pool(x, z[:, :4], torch.zeros(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="pad_mask: expected a bool tensor"):
        pool(x, z, torch.zeros(1, 5))
    with pytest.raises(ModelConfigError, match="num_heads: 5 does not divide the embedding size 16"):
        SlicePooling(16, num_heads=5)
    with pytest.raises(ModelConfigError, match="cls token needs at least one attention layer"):
        resolve_slice_pooling_config({"mode": "cls", "num_layers": 0}, "slice_pooling")


# ------------------------------------------------------------------------------------------ the whole model
@pytest.fixture(scope="module")
def radclip():
    torch.manual_seed(0)
    return build_model("tiny-radclip-resnet18", schedule={"stage": "volume", "freeze_image_encoder": False})


def _slices(b: int = 2, s: int = 6, size: int = 64, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, s, 1, size, size, generator=g), torch.arange(s, dtype=torch.float32).repeat(b, 1) * 3.0


def _set_chunking(model, chunk_size: int, checkpoint: bool) -> None:
    model.config["slice_pooling"].update(chunk_size=chunk_size, checkpoint=checkpoint)


def test_one_slice_volume_equals_the_image_embedding(radclip):
    images = torch.randn(3, 1, 64, 64)
    with torch.no_grad():
        vol = radclip.eval().encode_volume(images[:, None], torch.zeros(3, 1))
        img = radclip.encode_image(images)
    assert torch.allclose(vol.embedding, img, atol=1e-6)
    assert torch.equal(vol.slice_weights, torch.ones(3, 1))


def test_padded_slices_are_not_encoded_and_change_nothing(radclip):
    slices, z = _slices(b=1, s=4)
    padded = torch.cat([slices, torch.full((1, 3, 1, 64, 64), float("nan"))], dim=1)
    pz = torch.cat([z, torch.zeros(1, 3)], dim=1)
    mask = torch.tensor([[False] * 4 + [True] * 3])
    with torch.no_grad():
        plain = radclip.eval().encode_volume(slices, z)
        padded_out = radclip.encode_volume(padded, pz, mask)
    assert torch.allclose(plain.embedding, padded_out.embedding, atol=1e-5)
    assert bool((padded_out.slice_embeddings[0, 4:] == 0).all()) and bool((padded_out.slice_weights[0, 4:] == 0).all())
    assert torch.allclose(padded_out.slice_embeddings[0, :4].norm(dim=-1), torch.ones(4), atol=1e-5)


def _chunked_results(model, slices, z, train: bool) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Embedding and gradients of one volume batch encoded all at once, 8 and 1 slices at a time (checkpointed:
    without checkpointing, slices that need gradients are encoded all at once whatever the chunk size)."""
    results = []
    for chunk, checkpoint in ((slices.shape[1] * slices.shape[0], False), (8, True), (1, True)):
        _set_chunking(model, chunk, checkpoint)
        model.train(train).zero_grad()
        out = model.encode_volume(slices, z)
        out.embedding.pow(3).sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((out.embedding.detach(), grads))
    return results


def _assert_same(results) -> None:
    reference, ref_grads = results[0]
    assert any(n.startswith("image_encoder") for n in ref_grads) and any(n.startswith("slice_pooling") for n in ref_grads)
    for embedding, grads in results[1:]:
        torch.testing.assert_close(embedding, reference, atol=1e-5, rtol=0)
        assert grads.keys() == ref_grads.keys()
        for name in ref_grads:
            torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("train", [False, True])
def test_volume_embedding_and_gradients_do_not_depend_on_chunking(radclip, train):
    """Group norm: a slice's features depend on that slice alone, in eval and in training (chunk 1, 8, all)."""
    slices, z = _slices(b=2, s=12)
    _assert_same(_chunked_results(radclip, slices, z, train))


def test_volume_stage_keeps_batch_norm_statistics_of_the_2d_stage():
    """A batch-norm encoder trained on in stage volume uses its running statistics: chunking changes nothing."""
    torch.manual_seed(0)
    model = build_model("tiny-radclip-resnet18", image={"norm": "batch"}, schedule={"stage": "volume", "freeze_image_encoder": False})
    model.train()
    assert model.slice_pooling.training and model.image_encoder.training
    assert not any(m.training for m in model.image_encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    slices, z = _slices(b=1, s=10)
    _assert_same(_chunked_results(model, slices, z, train=True))
    assert all(int(m.num_batches_tracked) == 0 for m in model.image_encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.parametrize("first_stage", ["max", "mean"])
def test_stage_2d_pools_real_slices_without_the_adapter_and_returns_every_region(first_stage):
    torch.manual_seed(0)
    model = build_model("tiny-radclip-resnet18", slice_pooling={"first_stage": first_stage}).eval()
    slices, z = _slices(b=2, s=4)
    mask = torch.tensor([[False] * 4, [False, False, True, True]])
    with torch.no_grad():
        out = model.encode_volume(slices, z, mask, return_regions=True)
        first = model.image_and_patch_embeddings(slices[1, :2])
        per_slice = model._project_image(slices[1, :2])
    pooled = per_slice.amax(0) if first_stage == "max" else per_slice.mean(0)
    torch.testing.assert_close(out.embedding[1], torch.nn.functional.normalize(pooled, dim=0), atol=1e-5, rtol=0)
    if first_stage == "max":  # a slice's weight: the share of dimensions it sets
        wins = (per_slice[0] > per_slice[1]).float().mean()
        torch.testing.assert_close(out.slice_weights[1], torch.stack([wins, 1 - wins, torch.tensor(0.0), torch.tensor(0.0)]))
    else:
        torch.testing.assert_close(out.slice_weights[1], torch.tensor([0.5, 0.5, 0.0, 0.0]))
    assert out.region_embeddings.shape == (2, 4, 4, 128)  # 64 px through stride 32: 2 x 2 regions per slice
    torch.testing.assert_close(out.region_embeddings[1, :2], first[1], atol=1e-5, rtol=0)
    assert bool((out.region_embeddings[1, 2:] == 0).all())
    forward = model(slices=slices, z_mm=z, pad_mask=mask, return_patches=True, **model.tokenize(["a", "b"]))
    assert forward["patches"].shape == (2, 16, 128)
    assert forward["patch_mask"][1].tolist() == [False] * 8 + [True] * 8


def test_checkpoint_recomputation_updates_batch_norm_statistics_once():
    slices, z = _slices(b=1, s=4)
    stats = []
    torch.manual_seed(0)
    batch_norm = build_model("tiny-radclip-resnet18", image={"norm": "batch"})  # stage 2d: statistics are trained
    for checkpoint in (False, True):
        _set_chunking(batch_norm, 4, checkpoint)
        model = build_model(batch_norm.config).train()
        model.load_state_dict(batch_norm.state_dict())
        model.encode_volume(slices, z).embedding.sum().backward()
        bn = model.image_encoder.net.bn1
        stats.append((bn.running_mean.clone(), bn.num_batches_tracked.item()))
    assert torch.allclose(stats[0][0], stats[1][0]) and stats[0][1] == stats[1][1] == 1


def _saved_bytes(model, depth: int) -> tuple[int, int]:
    """Bytes of distinct storages autograd keeps for backward during one volume forward, and the input's bytes."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    slices, z = _slices(b=1, s=depth)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.encode_volume(slices, z)
    return sum(storages.values()), slices.numel() * slices.element_size()


def test_checkpointed_memory_for_backward_grows_only_with_the_input(radclip):
    radclip.train()
    growth = {}
    for checkpoint in (True, False):
        _set_chunking(radclip, 4, checkpoint)
        (small, small_in), (large, large_in) = _saved_bytes(radclip, 8), _saved_bytes(radclip, 32)
        growth[checkpoint] = large - small
    input_growth = large_in - small_in
    assert growth[True] < 2 * input_growth  # the slices themselves plus the small pooling transformer
    assert growth[False] > 10 * growth[True]  # without checkpointing every conv activation is kept


def test_schedule_freezes_or_slows_the_image_encoder():
    stage_2d = build_model("tiny-radclip-resnet18")
    assert not any(p.requires_grad for p in stage_2d.slice_pooling.parameters())
    parts = {g["name"].split("/")[0] for g in stage_2d.parameter_groups(1e-3)}
    assert parts == {"image", "image_head", "text", "heads"}

    frozen = build_model("tiny-radclip-resnet18", schedule={"stage": "volume", "freeze_image_encoder": True}).train()
    assert not frozen.image_encoder.training and frozen.slice_pooling.training  # frozen BN keeps its statistics
    slices, z = _slices(b=2, s=3)
    out = frozen(slices=slices, z_mm=z, **frozen.tokenize(["a", "b"]))
    (out["image"] * out["text"]).sum().backward()
    assert all(p.grad is None for p in frozen.image_encoder.parameters())
    assert all(p.grad is not None for p in frozen.slice_pooling.parameters())
    assert {g["name"].split("/")[0] for g in frozen.parameter_groups(1e-3)} == {"text", "heads"}
    assert out["slice_weights"].shape == (2, 3)

    slowed = build_model("tiny-radclip-resnet18", schedule={"stage": "volume", "freeze_image_encoder": False})
    lrs = {g["name"].split("/")[0]: g["lr"] for g in slowed.parameter_groups(1e-3, image_lr=1e-2)}
    # image_encoder_lr_scale 0.1 slows the image encoder's own rate and its head
    assert lrs == {"image": pytest.approx(1e-3), "image_head": pytest.approx(1e-4), "text": 1e-3, "heads": 1e-3}


def test_models_without_slice_pooling_or_bad_stacks_are_refused(radclip):
    model = build_model("tiny-resnet18")
    with pytest.raises(ValueError, match="has no slice_pooling section"):
        model.encode_volume(*_slices(b=1, s=2))
    with pytest.raises(ValueError, match=r"stack of single-channel slices, got torch.float32 \(1, 2, 3, 8, 8\)"):
        radclip.encode_volume(torch.randn(1, 2, 3, 8, 8), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="slices need z_mm"):
        radclip(slices=torch.randn(1, 2, 1, 8, 8))


@pytest.mark.parametrize(("mode", "values"), list(itertools.islice(COMBINATIONS, 0, None, 2)))
def test_pooling_modes_build_from_config(mode, values):
    model = build_model("tiny-radclip-resnet18", slice_pooling={"mode": mode, "values": values})
    with torch.no_grad():
        out = model.eval().encode_volume(*_slices(b=1, s=3))
    assert out.embedding.shape == (1, 128) and out.slice_weights.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_real_ct_volume_with_physical_positions_in_a_padded_batch(realdata, radclip):
    import nibabel as nib
    import numpy as np
    import torch.nn.functional as F

    nifti = nib.load(realdata / "volumes" / "totalsegmentator" / "example_ct_sm.nii.gz")
    hu = torch.from_numpy(np.asarray(nifti.dataobj, dtype=np.float32))  # (X, Y, Z), 3 mm slices
    slices = ((hu.clamp(-1000, 1000) + 1000) / 2000).permute(2, 1, 0)[:, None]  # (Z, 1, rows, cols)
    slices = F.interpolate(slices, size=(64, 64), mode="bilinear", antialias=True)
    z = torch.tensor([float((nifti.affine @ np.array([0, 0, k, 1]))[2]) for k in range(slices.shape[0])])
    thin, thick = (slices, z), (slices[::2], z[::2])  # the same anatomy at 3 mm and at 6 mm spacing
    depth = len(z)
    batch = torch.stack([thin[0], torch.cat([thick[0], torch.zeros(depth - len(thick[1]), 1, 64, 64)])])
    batch_z = torch.stack([thin[1], torch.cat([thick[1], torch.zeros(depth - len(thick[1]))])])
    mask = torch.zeros(2, depth, dtype=torch.bool)
    mask[1, len(thick[1]) :] = True
    radclip.eval()
    with torch.no_grad():
        both = radclip.encode_volume(batch, batch_z, mask)
        thick_alone = radclip.encode_volume(thick[0][None], thick[1][None])
        shifted = radclip.encode_volume(thin[0][None], thin[1][None] + 250.0)
    assert torch.allclose(both.slice_weights.sum(dim=1), torch.ones(2), atol=1e-6)
    assert torch.allclose(both.embedding[1], thick_alone.embedding[0], atol=1e-5)
    assert torch.allclose(both.embedding[0], shifted.embedding[0], atol=1e-5)  # only relative z matters


@pytest.mark.parametrize(("checkpoint", "grad", "calls"), [(False, True, 1), (True, True, 3), (False, False, 3)])
def test_chunks_split_only_where_they_save_memory(checkpoint, grad, calls):
    """Without checkpointing, backward keeps every chunk's activations: one pass. Checkpointing or no gradient: chunks."""
    layer = torch.nn.Linear(4, 2)
    seen: list[int] = []

    def encode(x: torch.Tensor) -> torch.Tensor:
        seen.append(len(x))
        return layer(x)

    items = torch.randn(10, 4)
    with torch.set_grad_enabled(grad):
        out = encode_in_chunks(encode, items, [layer], chunk_size=4, use_checkpoint=checkpoint)
    torch.testing.assert_close(out, layer(items))
    assert len(seen) == calls and sum(seen) == 10
