"""Attribution library: one pass gives the model's own embeddings; heatmaps line up with the image; helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medvl.infer import attribution as A
from medvl.infer.embed import encode_texts
from medvl.infer.loading import ModelInput, load_for_inference, read_concepts, save_concepts
from medvl.text.lexicon import Lexicon
from medvl.text.prompts import PHANTOM_PROMPTS
from tests.app_support import save_small_model


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    model, _ = load_for_inference(save_small_model(tmp_path_factory.mktemp("attr") / "model"))
    lexicon = Lexicon([c for c in Lexicon.default() if c.category == "finding"][:12])
    return model, A.build_text_bank(model, PHANTOM_PROMPTS, lexicon)


def _volume(depth: int = 5, size: int = 128) -> ModelInput:
    rng = np.random.default_rng(0)
    return ModelInput(rng.random((depth, size, size), dtype=np.float32), np.arange(depth, dtype=np.float32) * 3.0,
                      (16, 0, 112, 128))  # fmt: skip


def test_analysis_embeddings_are_the_models_own(loaded):
    model, _ = loaded
    volume = _volume()
    analysis = A.analyse(model, volume)
    slices, z = volume.volume_tensors()
    first = ModelInput(volume.pixels[:1], volume.z_mm[:1], volume.content_box)
    with torch.no_grad():
        expected = model.encode_volume(slices, z)
        image = A.analyse(model, first, dense=False)
        glob, patches, grid = model.image_and_patch_embeddings(volume.image_tensor())
    assert analysis.pooling == "attention" and grid == (4, 4) and analysis.grid == (8, 8)
    torch.testing.assert_close(analysis.embedding, expected.embedding[0], atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(analysis.slice_weights, expected.slice_weights[0].numpy(), atol=1e-6)
    torch.testing.assert_close(image.embedding, glob[0], atol=1e-5, rtol=1e-4)
    assert image.grid == (4, 4)
    torch.testing.assert_close(image.patches[0], patches[0], atol=1e-5, rtol=1e-4)
    assert image.pooling == "image" and image.slice_weights.tolist() == [1.0]


def test_dense_regions_are_the_encoder_on_quarter_stride_shifted_inputs(loaded):
    model, _ = loaded
    volume = _volume(1)
    dense = A.analyse(model, volume).patches[0].reshape(8, 8, -1)
    image = volume.pixels[0]
    for a, dy in enumerate((8, -8)):  # stride 32: a quarter is 8 px; + moves the content down / right
        for b, dx in enumerate((8, -8)):
            pad = ((8, 0) if dy > 0 else (0, 8), (8, 0) if dx > 0 else (0, 8))
            moved = np.pad(image, pad, mode="edge")[slice(None, 128) if dy > 0 else slice(8, None),
                                                    slice(None, 128) if dx > 0 else slice(8, None)]  # fmt: skip
            with torch.no_grad():
                _, patches, _ = model.image_and_patch_embeddings(torch.from_numpy(moved)[None, None])
            cells = dense[a::2, b::2].reshape(16, -1)
            torch.testing.assert_close(cells, patches[0], atol=1e-5, rtol=1e-4)


def test_findings_match_zero_shot_and_carry_their_prompts(loaded):
    model, bank = loaded
    analysis = A.analyse(model, _volume(1))
    scores = A.finding_scores(analysis, bank)
    assert [s.name for s in scores] == list(PHANTOM_PROMPTS)
    effusion = scores[list(PHANTOM_PROMPTS).index("Pleural Effusion")]
    assert effusion.positive_prompts == ["Pleural effusion is present."]
    pos, neg = bank.positive[list(PHANTOM_PROMPTS).index("Pleural Effusion")], bank.negative[
        list(PHANTOM_PROMPTS).index("Pleural Effusion")]
    logits = torch.stack([analysis.embedding @ pos, analysis.embedding @ neg]) * bank.scale
    assert effusion.probability == pytest.approx(float(logits.softmax(0)[0]), abs=1e-6)
    query = A.query_score(model, analysis, "  pleural   effusion ")
    assert (query.text, query.negative_prompt) == ("pleural effusion", "no pleural effusion")
    assert 0 < query.probability < 1
    with pytest.raises(ValueError, match="empty"):
        A.query_score(model, analysis, "   ")


def test_heatmap_is_the_region_scores_cropped_to_the_content_box(loaded):
    model, bank = loaded
    analysis = A.analyse(model, _volume(2))
    direction = bank.direction("Cardiomegaly")
    grid = A.patch_scores(analysis, direction, bank.scale)
    assert grid.shape == (2, 8, 8)
    heat = A.heatmap(analysis, direction, bank.scale, slice_index=1)
    assert heat.shape == (96, 128)  # the content box, padding cropped
    peak_cell = np.unravel_index(int(np.argmax(grid[1][1:7])), (6, 8))  # rows 1-6: the content box's cells
    peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
    assert (peak[0] + 16) // 16 == peak_cell[0] + 1 and peak[1] // 16 == peak_cell[1]
    assert A.heatmap(analysis, direction, bank.scale, 1, out_shape=(300, 400)).shape == (300, 400)
    with pytest.raises(IndexError):
        A.heatmap(analysis, direction, bank.scale, slice_index=2)
    coarse = A.analyse(model, _volume(2), dense=False)  # slice scores read the encoder's own regions, not the dense grid
    torch.testing.assert_close(analysis.regions, coarse.patches)
    own = A.patch_scores(coarse, direction, bank.scale).reshape(2, -1).max(axis=1)
    np.testing.assert_allclose(A.slice_scores(analysis, direction, bank.scale), own, rtol=1e-5)


def test_targets_and_concepts(loaded):
    model, bank = loaded
    analysis = A.analyse(model, _volume(1))
    concepts = A.top_concepts(analysis, bank, k=5)
    assert len(concepts) == 5 and [c.score for c in concepts] == sorted((c.score for c in concepts), reverse=True)
    torch.testing.assert_close(bank.direction(concepts[0].name), bank.concept_embeddings[
        [c.name for c in bank.concepts].index(concepts[0].name)])
    with pytest.raises(KeyError, match="neither an observation"):
        bank.direction("no such thing")
    assert A.top_concepts(analysis, bank, categories=["device"]) == []


def test_observations_point_at_their_trained_concept(loaded, tmp_path):
    model, plain = loaded
    assert read_concepts(tmp_path) == []  # a model trained without the concept term
    save_concepts(["normal", "pleural effusion", "lung mass", "cardiomegaly", "lung nodule"], tmp_path)
    trained = read_concepts(tmp_path)
    bank = A.build_text_bank(model, PHANTOM_PROMPTS, [], trained_concepts=trained)
    assert bank.region_concepts["Lung Lesion"][0] == "lung mass"  # the observation's most frequent trained one
    assert set(bank.region_concepts) == {"Pleural Effusion", "Lung Lesion", "Cardiomegaly"}
    with torch.no_grad():
        expected = encode_texts(model, ["pleural effusion"], torch.device("cpu"))[0]
    torch.testing.assert_close(bank.direction("Pleural Effusion"), expected / expected.norm())
    j = plain.observations.index("Pneumothorax")  # no trained concept: positive minus negative prompts
    torch.testing.assert_close(bank.direction("Pneumothorax"), plain.positive[j] - plain.negative[j])
    assert "concept 'pleural effusion'" in bank.describe("Pleural Effusion")
    analysis = A.analyse(model, _volume(3))
    scores = {s.name: s for s in A.finding_scores(analysis, bank)}
    effusion = scores["Pleural Effusion"]  # read by the patch-concept head over every region of every slice
    best = float((analysis.regions @ bank.direction("Pleural Effusion")).max())  # the encoder's own grid, as trained
    expected = 1 / (1 + np.exp(-(float(model.concept_logit_scale.exp()) * best + float(model.concept_logit_bias))))
    assert (effusion.source, effusion.positive_prompts, effusion.negative_prompts) == ("concept", ["pleural effusion"], [])
    assert effusion.probability == pytest.approx(expected, abs=1e-6)
    assert scores["Pneumothorax"].source == "prompts" and len(scores["Pneumothorax"].negative_prompts) == 1
    assert "prompts" in bank.describe("Pneumothorax") and bank.describe("lung nodule") == "lung nodule"
    (tmp_path / "concepts.json").write_text('["not", "an", "object"]')
    with pytest.raises(ValueError, match="concepts.json"):
        read_concepts(tmp_path)


def test_slice_helpers():
    assert A.top_slices([0.1, 0.5, 0.3, 0.5], k=3) == [1, 3, 2]
    assert A.nearest_slice(np.array([0.0, 3.0, 6.0]), 4.0) == 1


def test_pointing_game_and_deletion_helpers():
    heat = np.zeros((20, 20))
    heat[5, 6] = 1.0
    mask = np.zeros((20, 20), bool)
    mask[10:12, 10:12] = True
    assert not A.pointing_hit(heat, mask)
    assert A.pointing_hit(heat, mask, tolerance_px=np.hypot(5, 4) + 0.01)
    with pytest.raises(ValueError, match="empty"):
        A.pointing_hit(heat, np.zeros_like(mask))
    region = A.top_region(np.arange(100.0).reshape(10, 10), 0.05)
    assert region.sum() == 5 and region[9, 5:].all()
    pixels = np.ones((2, 10, 10), np.float32)
    pixels[:, 0, 0] = 3.0
    deleted = A.delete_region(pixels, region)
    np.testing.assert_allclose(deleted[:, region], 97 / 95, rtol=1e-6)  # mean of the 95 pixels left
    assert pixels[0, 9, 0] == 1.0 and deleted[0, 0, 0] == 3.0
