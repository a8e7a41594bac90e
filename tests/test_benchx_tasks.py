"""Every benchx task on a tiny phantom cohort, model adapters (medvl random baseline, volumes, Hugging Face)."""

from __future__ import annotations

import numpy as np
import pytest

from benchx.cards import find_card
from benchx.data import prepare_dataset
from benchx.errors import LabelSpaceError, SplitChangedError
from benchx.features import FeatureStore
from benchx.models import ModelAdapter, load_adapter
from benchx.tasks import TASK_FUNCTIONS
from benchx.tasks.base import TaskContext
from tests.benchx_tiny import write_cards


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchx-tasks")
    mp = pytest.MonkeyPatch()
    mp.setenv("BENCHX_CARDS", str(root / "cards"))
    write_cards(root / "cards")
    dataset = prepare_dataset(find_card("tiny-2d"), root / "data")
    adapter = load_adapter("random:tiny-resnet18")
    yield root, dataset, adapter
    mp.undo()


@pytest.fixture(scope="module")
def ctx(env):
    root, dataset, adapter = env
    return TaskContext(dataset, adapter, FeatureStore(root / "data" / "features"))


def test_dataset_is_prepared_with_frozen_split(env):
    root, dataset, _ = env
    assert set(dataset.manifest["split"]) == {"train", "val", "test"}
    assert (root / "data" / "datasets" / "tiny-2d" / "split.json").is_file()
    assert len(dataset.split_hash) == 64
    again = prepare_dataset(find_card("tiny-2d"), root / "data")
    assert again.split_hash == dataset.split_hash and again.cache_dir == dataset.cache_dir


def test_changed_split_is_refused(env, tmp_path):
    root, dataset, _ = env
    card = find_card("tiny-2d")
    import dataclasses

    changed = dataclasses.replace(card, split_options={**card.split_options, "split_fractions": [0.4, 0.3, 0.3]})
    with pytest.raises(SplitChangedError, match="Delete"):
        prepare_dataset(changed, root / "data")
    pinned = dataclasses.replace(card, split_hash="0" * 64)
    with pytest.raises(SplitChangedError, match="split.hash"):
        prepare_dataset(pinned, tmp_path)


def test_label_space_mismatch_lists_the_data_labels(env):
    root, _, _ = env
    import dataclasses

    card = dataclasses.replace(find_card("tiny-2d"), label_space=("Cardiomegaly", "Liver Lesion"))
    with pytest.raises(LabelSpaceError, match="Liver Lesion.*the data has: .*Cardiomegaly"):
        prepare_dataset(card, root / "data")


def test_adapter_protocol_and_feature_cache(env, ctx):
    root, dataset, adapter = env
    assert isinstance(adapter, ModelAdapter)
    first = ctx.embeddings("train")
    assert first.shape[0] == len(ctx.study_ids("train"))
    assert np.allclose(np.linalg.norm(first, axis=1), 1, atol=1e-4)
    store = FeatureStore(root / "data" / "features")
    again = TaskContext(dataset, adapter, store).embeddings("train")
    assert store.hits == 1 and store.misses == 0 and np.array_equal(first, again)


def test_linear_probe_on_phantom_features_beats_chance(ctx):
    outcome = TASK_FUNCTIONS["linear_probe"](ctx, 1.0, 0)
    assert {"auroc_macro", "f1_macro", "accuracy", "auroc_Cardiomegaly"} <= set(outcome.metrics)
    assert outcome.metrics["auroc_macro"].point() > 0.6
    assert outcome.n_test == len(ctx.study_ids("test"))
    assert TASK_FUNCTIONS["linear_probe"](ctx, 0.1, 0).details["n_train"] < outcome.details["n_train"]


@pytest.mark.parametrize("task", ["finetune_frozen", "finetune_full", "zero_shot"])
def test_classification_tasks(ctx, task):
    outcome = TASK_FUNCTIONS[task](ctx, 1.0, 0)
    value = outcome.metrics["auroc_macro"].point()
    assert 0.0 <= value <= 1.0
    assert 0.0 <= outcome.metrics["accuracy"].point() <= 1.0


def test_retrieval(ctx):
    outcome = TASK_FUNCTIONS["retrieval"](ctx, 1.0, 0)
    r = {k: m.point() for k, m in outcome.metrics.items()}
    assert r["i2t_R1"] <= r["i2t_R5"] <= r["i2t_R10"] and r["t2i_R1"] <= r["t2i_R10"]
    assert 0 <= r["precision_at_5"] <= 1


def test_segmentation_dice_and_iou(ctx):
    outcome = TASK_FUNCTIONS["segmentation"](ctx, 1.0, 0)
    dice, iou = outcome.metrics["dice"].point(), outcome.metrics["iou"].point()
    assert 0 < iou <= dice <= 1
    assert outcome.n_test > 0


def test_volume_dataset_through_slice_pooling(env):
    root, _, _ = env
    dataset = prepare_dataset(find_card("tiny-3d"), root / "data")
    adapter = load_adapter("random:tiny-radclip-resnet18")
    ctx3 = TaskContext(dataset, adapter, FeatureStore(root / "data" / "features"))
    assert ctx3.embeddings("test").shape == (len(ctx3.study_ids("test")), 128)
    outcome = TASK_FUNCTIONS["segmentation"](ctx3, 1.0, 0)
    assert 0 <= outcome.metrics["dice"].point() <= 1


def test_hugging_face_vision_model_from_local_folder(env, tmp_path):
    from transformers import ViTConfig, ViTModel

    root, dataset, _ = env
    config = ViTConfig(image_size=32, patch_size=8, num_channels=1, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=64)
    ViTModel(config).save_pretrained(tmp_path / "vit")
    adapter = load_adapter(f"hf:{tmp_path / 'vit'}")
    assert adapter.info.fingerprint and not adapter.has_text
    ctx_hf = TaskContext(dataset, adapter, FeatureStore(tmp_path / "features"))
    assert ctx_hf.embeddings("val").shape[1] == 32
    maps = adapter.feature_maps(ctx_hf.cohort("val")[0]["image"][None])
    assert maps[-1].shape == (1, 32, 4, 4)
    outcome = TASK_FUNCTIONS["linear_probe"](ctx_hf, 1.0, 0)
    assert 0 <= outcome.metrics["auroc_macro"].point() <= 1


def test_a_trained_medvl_model_sees_images_at_its_training_size(tmp_path):
    import torch
    import torch.nn.functional as F

    from medvl.data.preprocess import PrepSettings
    from medvl.infer.loading import save_preprocess
    from medvl.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("tiny-radclip-resnet18")
    folder = model.save_pretrained(tmp_path / "model")
    untrained = load_adapter(str(folder))
    save_preprocess(PrepSettings(size=96), folder)  # what `medvl pretrain` saves next to its model
    trained = load_adapter(str(folder))
    assert (untrained.input_size, trained.input_size) == (None, 96)
    images = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        at_96 = model.eval().encode_image(F.interpolate(images, size=(96, 96), mode="bilinear", align_corners=False))
        torch.testing.assert_close(trained.encode_image(images), at_96)
        torch.testing.assert_close(untrained.encode_image(images), model.encode_image(images))
        assert trained.feature_maps(images)[-1].shape[-1] == 3  # 96 px at stride 32
        slices, z_mm = images[:, None].expand(2, 3, 1, 64, 64), torch.arange(3.0).expand(2, 3)
        pad = torch.zeros(2, 3, dtype=torch.bool)
        expected = model.encode_volume(F.interpolate(slices.reshape(6, 1, 64, 64), size=(96, 96), mode="bilinear",
                                                     align_corners=False).reshape(2, 3, 1, 96, 96), z_mm, pad)
        torch.testing.assert_close(trained.encode_volume(slices, z_mm, pad), expected.embedding)


def test_a_model_trained_on_body_cropped_ct_is_evaluated_on_body_cropped_ct(env, tmp_path):
    import json

    import torch
    import yaml

    from benchx.api import evaluate
    from medvl.data.preprocess import PrepSettings
    from medvl.infer.loading import save_preprocess
    from medvl.models.registry import build_model

    root, _, _ = env
    torch.manual_seed(0)
    folder = build_model("tiny-radclip-resnet18").save_pretrained(tmp_path / "model")
    save_preprocess(PrepSettings(size=32, ct_window="mediastinum", crop_body=True), folder)
    assert load_adapter(str(folder)).crop_body and not load_adapter("random:tiny-radclip-resnet18").crop_body
    plain = prepare_dataset(find_card("tiny-3d"), root / "data")
    cropped = prepare_dataset(find_card("tiny-3d"), root / "data", crop_body=True)
    assert cropped.split_hash == plain.split_hash and cropped.cache_dir != plain.cache_dir
    assert json.loads(cropped.preprocessing)["crop_body"] and "crop_body" not in json.loads(plain.preprocessing)
    first_plain, first_cropped = plain.cohort("test")[0]["image"], cropped.cohort("test")[0]["image"]
    assert first_plain.shape == first_cropped.shape and not torch.equal(first_plain, first_cropped)
    suite = root / "cards" / "tiny-3d-suite.yml"
    suite.write_text(yaml.safe_dump({"name": "tiny-3d", "description": "tiny CT phantom", "datasets": ["tiny-3d"]}))
    results = evaluate(str(folder), str(suite), tasks=["linear_probe"], fractions=[1.0], seeds=[0],
                       out_dir=tmp_path / "results", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                       data_dir=root / "data", bootstrap=20, progress=False)
    assert results.datasets["tiny-3d"]["preprocessing"] == cropped.preprocessing
