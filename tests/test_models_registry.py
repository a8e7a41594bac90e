"""Architecture registry: names, user files, validation, save/load, and every registered config building."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from medvl.models import ModelConfigError, build_model, get_config, list_models, load_pretrained
from medvl.text.tokenizer import train_wordpiece

TINY_TEXT = ["No acute cardiopulmonary process.", "Small right pleural effusion.", "Heart size is normal."]


@pytest.fixture(autouse=True, scope="module")
def torch_single_thread():
    """Tiny models gain nothing from a second thread, and on a busy 2-core machine OpenMP barriers made
    these tests up to 100x slower; restored afterwards. Other model test modules import this fixture."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def train_small_wordpiece(folder):
    """A small WordPiece tokenizer trained by the project's own trainer."""
    return train_wordpiece(TINY_TEXT * 5, vocab_size=1000, out_dir=folder, min_frequency=1)


def test_registry_lists_the_documented_architectures():
    names = list_models()
    for name in (
        "tiny-resnet18",
        "tiny-radclip-resnet18",
        "convirt-resnet18-tiny",
        "convirt-resnet50",
        "radclip-resnet18",
        "vit-b16-bert",
        "densenet121-bert",
        "resnet50-bert",
        "minilm",
    ):
        assert name in names
    for name in names:  # every registered file resolves
        assert get_config(name)["name"] == name


def test_unknown_name_lists_registered_models():
    with pytest.raises(ModelConfigError, match="registered models: .*tiny-resnet18"):
        get_config("resnet-9000")


def test_convirt_reference_values_in_config():
    cfg = get_config("convirt-resnet50")
    assert cfg["image"]["arch"] == "resnet50" and cfg["embed_dim"] == 512
    assert cfg["loss"]["tau"] == 0.1 and cfg["loss"]["lam"] == 0.75
    assert cfg["text"]["pooling"] == "max" and cfg["text"]["freeze_embeddings"] and cfg["text"]["freeze_layers"] == 6


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"image": {"arch": "resnet18", "widen_factr": 2}}, r"image\.widen_factr: unknown key"),
        ({"image": {"arch": "resnet101"}}, r"image\.arch: 'resnet101' is not one of"),
        ({"image": {"arch": "vit", "image_size": 100}}, r"image\.image_size: 100 is not a multiple of patch_size 16"),
        ({"schedule": {"stage": "volume"}}, r"schedule\.stage: 'volume' needs a slice_pooling section"),
        ({"text": {"tokenizer": None}}, r"text\.tokenizer: required for source 'config'"),
        ({"text": {"path": "/models/bert"}}, r"text\.path: only used with source 'pretrained'"),
        ({"text": {"pooling": "attention"}}, r"text\.pooling: 'attention' is not one of cls, mean, max"),
        ({"embed_dim": 0}, r"embed_dim: must be at least 1"),
        ({"slice_pooling": {"mode": "mean", "num_layers": 2}}, r"slice_pooling\.num_layers: mean pooling"),
        ({"heads": {}}, r"heads: unknown section"),
    ],
)
def test_invalid_configs_name_the_field(override, message):
    with pytest.raises(ModelConfigError, match=message):
        get_config("tiny-resnet18", **override)


def test_user_yaml_file_with_relative_tokenizer_builds(tmp_path):
    train_small_wordpiece(tmp_path / "tok")
    raw = json.loads(json.dumps(get_config("tiny-resnet18")))
    raw.pop("name")
    raw["text"]["tokenizer"] = "tok"
    raw["text"]["hf_config"] = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    raw["embed_dim"] = 48
    path = tmp_path / "my-model.yaml"
    path.write_text(yaml.safe_dump(raw))
    model = build_model(path).eval()
    assert model.config["name"] == "my-model"
    assert model.config["text"]["tokenizer"] == str((tmp_path / "tok").resolve())
    assert model.config["text"]["hf_config"]["vocab_size"] == len(model.tokenizer) <= 1000
    assert model.config["text"]["hf_config"]["model_type"] == "bert"
    batch = model.tokenize(TINY_TEXT)
    with torch.no_grad():
        assert model.encode_text(**batch).shape == (3, 48)


def test_unreadable_user_file_is_refused(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ModelConfigError, match="broken.json: not valid JSON"):
        build_model(path)


def test_missing_pretrained_text_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelConfigError, match="cannot load a transformers model from .*missing-bert"):
        build_model("convirt-resnet50", text={"path": str(tmp_path / "missing-bert")})


def test_overrides_change_the_built_model():
    model = build_model("tiny-resnet18", embed_dim=32, text={"pooling": "mean"})
    assert model.config["embed_dim"] == 32 and model.text_encoder.pooling == "mean"
    assert model.config["text"]["hf_config"]["hidden_size"] == 128  # merged, not replaced
    switched = get_config("tiny-resnet18", image={"arch": "densenet121"})
    assert "widen_factor" not in switched["image"] and switched["image"]["image_size"] == 224
    with torch.no_grad():
        assert model.eval().encode_image(torch.randn(2, 1, 64, 64)).shape == (2, 32)


def test_save_and_load_round_trip(tmp_path):
    model = build_model("tiny-radclip-resnet18").eval()
    images = torch.randn(2, 1, 128, 128)
    batch = model.tokenize(TINY_TEXT[:2])
    with torch.no_grad():
        model.logit_scale.fill_(3.0)
        expected_image, expected_text = model.encode_image(images), model.encode_text(**batch)
    model.save_pretrained(tmp_path / "saved")
    assert {p.name for p in (tmp_path / "saved").iterdir()} >= {"config.json", "model.safetensors", "tokenizer"}

    loaded = load_pretrained(tmp_path / "saved").eval()
    assert loaded.config["image"] == model.config["image"] and loaded.config["slice_pooling"] == model.config["slice_pooling"]
    assert torch.equal(loaded.tokenize(TINY_TEXT[:2])["input_ids"], batch["input_ids"])
    with torch.no_grad():
        assert torch.allclose(loaded.encode_image(images), expected_image, atol=1e-6)
        assert torch.allclose(loaded.encode_text(**batch), expected_text, atol=1e-6)
    assert loaded.logit_scale.item() == 3.0


def test_load_for_the_volume_stage_and_refuse_architecture_changes(tmp_path):
    build_model("tiny-radclip-resnet18").save_pretrained(tmp_path / "stage1")
    stage2 = load_pretrained(tmp_path / "stage1", schedule={"stage": "volume", "freeze_image_encoder": True})
    assert not any(p.requires_grad for p in stage2.image_encoder.parameters())
    assert all(p.requires_grad for p in stage2.slice_pooling.parameters())
    with pytest.raises(ModelConfigError, match="weights do not fit the config"):
        load_pretrained(tmp_path / "stage1", embed_dim=64)
    with pytest.raises(ModelConfigError, match="not a saved model"):
        load_pretrained(tmp_path)


def test_a_later_stage_may_weigh_other_loss_terms(tmp_path):
    """RadCLIP's 2D stage may train without the CLIP term; the volume stage adds it: its logit scale starts fresh,
    every other weight comes from the saved model."""
    saved = build_model("tiny-radclip-resnet18", loss={"weights": {"clip": 0.0, "concept": 1.0}})
    assert saved.logit_scale is None
    saved.save_pretrained(tmp_path / "stage1")
    stage2 = load_pretrained(tmp_path / "stage1", loss={"weights": {"clip": 1.0, "concept": 1.0}})
    assert stage2.logit_scale is not None
    assert float(stage2.logit_scale.exp()) == pytest.approx(1 / stage2.config["logit"]["init_temperature"])
    torch.testing.assert_close(stage2.image_encoder.state_dict(), saved.image_encoder.state_dict())
    back = load_pretrained(tmp_path / "stage1", loss={"weights": {"clip": 1.0, "concept": 0.0}})  # dropping a term too
    assert back.concept_logit_scale is None


@pytest.mark.slow
@pytest.mark.parametrize("name", ["convirt-resnet50", "vit-b16-bert", "densenet121-bert", "radclip-resnet18", "convirt-resnet18-tiny"])
def test_full_size_configs_build_and_run_one_forward(name):
    overrides = {}
    if get_config(name)["text"]["source"] == "pretrained":  # no hub access here: same encoder shape from config
        overrides["text"] = {"source": "config", "tokenizer": "characters", "hf_config": {"hidden_size": 64}}
    model = build_model(name, **overrides).eval()
    size = model.config["image"]["image_size"]
    with torch.no_grad():
        out = model(images=torch.randn(2, 1, size, size), **model.tokenize(TINY_TEXT[:2]))
    assert out["image"].shape == out["text"].shape == (2, 512)
    assert torch.allclose(out["image"].norm(dim=-1), torch.ones(2), atol=1e-5)
