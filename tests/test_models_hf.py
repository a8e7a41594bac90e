"""Pretrained starts: Hugging Face vision towers (``image.arch: hf``), text towers with custom code, optimizer
groups, and two real trainer steps from tiny ``save_pretrained`` folders (random weights, built from config)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoConfig,
    AutoModel,
    BertConfig,
    BertModel,
    CLIPConfig,
    CLIPModel,
    SiglipConfig,
    SiglipModel,
)

from medvl.cli import main
from medvl.config import load_config
from medvl.models import ModelConfigError, build_model, get_config, load_pretrained
from medvl.models.hf_image import IMAGENET_MEAN, IMAGENET_STD
from medvl.models.text import character_tokenizer
from medvl.train.schedule import cosine_with_warmup
from medvl.train.settings import PretrainConfig
from tests.test_models_registry import torch_single_thread  # noqa: F401 (fixture)

REPO_ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["No acute findings.", "Small right pleural effusion."]
VIT_LIKE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "image_size": 32, "patch_size": 8}
CLIP_TEXT = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32, "vocab_size": 64}
# every tower at 32 px native size; a 64 px input gives an 8 x 8 grid (stride 8: patch 8, or the stem and one stage)
TOWERS = {
    "resnet": {"embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1], "layer_type": "basic"},
    "convnext": {"num_stages": 2, "hidden_sizes": [16, 32], "depths": [1, 1], "image_size": 32},
    "vit": VIT_LIKE,
    "dinov2": {**VIT_LIKE, "mlp_ratio": 2},
    "swin": {"embed_dim": 16, "depths": [1, 1], "num_heads": [1, 2], "window_size": 2, "image_size": 32, "patch_size": 4},
    "clip": None,  # full CLIP / SigLIP models: medvl takes their vision tower
    "siglip": None,
}
DROPPED = ("pooler.", "head.", "embeddings.mask_token")  # outside the feature path: DDP would wait for them


def _save_tower(kind: str, folder: Path) -> dict[str, torch.Tensor]:
    """Save a tiny random model of ``kind``; returns the state of the vision model medvl should load."""
    if kind in ("clip", "siglip"):
        config_cls, model_cls = (CLIPConfig, CLIPModel) if kind == "clip" else (SiglipConfig, SiglipModel)
        full = model_cls(config_cls(vision_config=VIT_LIKE, text_config=CLIP_TEXT, projection_dim=16))
        full.save_pretrained(folder)
        return full.vision_model.state_dict()
    model = AutoModel.from_config(AutoConfig.for_model(kind, **TOWERS[kind]))
    model.save_pretrained(folder)
    return model.state_dict()


@pytest.fixture(scope="module")
def towers(tmp_path_factory) -> dict[str, tuple[Path, dict[str, torch.Tensor]]]:
    """One tiny saved model per family, with the weights saved."""
    root = tmp_path_factory.mktemp("hf-towers")
    torch.manual_seed(0)
    return {kind: (root / kind, _save_tower(kind, root / kind)) for kind in TOWERS}


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory) -> Path:
    """A tiny BERT with its (character-level) tokenizer, as save_pretrained writes them."""
    folder = tmp_path_factory.mktemp("bert")
    tokenizer = character_tokenizer(64)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)  # fmt: skip
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _hf_model(folder: Path, **overrides):
    """tiny-resnet18 with the HF tower in ``folder`` (and no MONAI import, which takes seconds)."""
    return build_model("tiny-resnet18", embed_dim=16, image={"arch": "hf", "path": str(folder), "image_size": 64}, **overrides)


@pytest.mark.parametrize("kind", TOWERS)
def test_hf_towers_load_the_saved_weights_and_expose_regions(towers, kind):
    folder, saved = towers[kind]
    model = _hf_model(folder).train()
    encoder = model.image_encoder
    loaded = encoder.model.state_dict()
    assert set(loaded) <= set(saved) and all(k.startswith(DROPPED) for k in set(saved) - set(loaded))
    assert all(torch.equal(loaded[k], saved[k]) for k in loaded)

    for size, grid in ((64, 8), (32, 4)):  # 64 px interpolates the position embeddings of the 32 px models
        images = torch.rand(2, 1, size, size)
        fmap, pyramid = encoder.feature_map(images), encoder.feature_pyramid(images)
        assert fmap.shape == (2, encoder.out_channels, grid, grid) == (2, 32, grid, grid)
        assert torch.equal(pyramid[-1], fmap)
        assert torch.allclose(encoder(images), fmap.mean(dim=(2, 3)), atol=1e-6)

    out = model(images=torch.rand(2, 1, 64, 64), return_patches=True, **model.tokenize(TEXTS))
    assert out["patches"].shape == (2, 64, 16) and out["grid"] == (8, 8)
    (out["image"].sum() + out["patches"].sum() + out["text"].sum()).backward()
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []  # DDP-safe


def _pixels_seen(model, images: torch.Tensor) -> torch.Tensor:
    seen = {}
    hook = model.image_encoder.model.register_forward_pre_hook(
        lambda _module, _args, kwargs: seen.update(kwargs), with_kwargs=True
    )
    with torch.no_grad():
        model.encode_image(images)
    hook.remove()
    return seen["pixel_values"]


def test_grayscale_is_repeated_and_normalised_with_the_models_own_statistics(towers, tmp_path):
    folder = tmp_path / "vit"
    shutil.copytree(towers["vit"][0], folder)
    images = torch.rand(2, 1, 32, 32)
    default = _hf_model(folder)
    assert default.config["image"]["image_mean"] == list(IMAGENET_MEAN)
    expected = (images.repeat(1, 3, 1, 1) - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(_pixels_seen(default, images), expected, atol=1e-6)

    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.5]
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": mean, "image_std": std, "do_normalize": True}))
    own = _hf_model(folder)
    assert (own.config["image"]["image_mean"], own.config["image"]["image_std"]) == (mean, std)
    pixels = _pixels_seen(own, images)
    assert pixels.shape == (2, 3, 32, 32)
    for c in range(3):
        assert torch.allclose(pixels[:, c], (images[:, 0] - mean[c]) / std[c], atol=1e-6)

    own.save_pretrained(tmp_path / "saved")  # the statistics travel with the saved model
    assert load_pretrained(tmp_path / "saved").config["image"]["image_mean"] == mean


@pytest.mark.parametrize("kind", TOWERS)
def test_save_and_load_rebuilds_the_tower_without_its_folder(towers, kind, tmp_path):
    folder = tmp_path / kind
    shutil.copytree(towers[kind][0], folder)
    model = _hf_model(folder).eval()
    model.save_pretrained(tmp_path / "saved")
    shutil.rmtree(folder)
    loaded = load_pretrained(tmp_path / "saved").eval()
    image = loaded.config["image"]
    assert image["path"] is None and image["hf_config"]["model_type"] == model.image_encoder.model.config.model_type
    images, batch = torch.rand(3, 1, 64, 64), model.tokenize(TEXTS)
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(images), model.encode_image(images))
        assert torch.equal(loaded.patch_embeddings(images)[0], model.patch_embeddings(images)[0])
        assert torch.equal(loaded.encode_text(**batch), model.encode_text(**batch))


def test_slice_pooling_encodes_volumes_on_an_hf_tower(towers):
    model = build_model(
        "tiny-radclip-resnet18", embed_dim=16, slice_pooling={"num_heads": 2},
        image={"arch": "hf", "path": str(towers["vit"][0]), "image_size": 32}, schedule={"stage": "volume"},
    ).eval()  # fmt: skip
    slices = torch.rand(2, 5, 1, 32, 32)
    z = torch.arange(5.0).repeat(2, 1) * 2.5
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    with torch.no_grad():
        volume = model.encode_volume(slices, z, pad)
        single = model.encode_volume(slices[:1, :1], z[:1, :1])
        image = model.encode_image(slices[:1, 0])
    assert volume.embedding.shape == (2, 16) and volume.slice_weights.shape == (2, 5)
    assert torch.allclose(volume.slice_weights.sum(dim=1), torch.ones(2)) and bool((volume.slice_weights[1, 3:] == 0).all())
    assert torch.allclose(single.embedding, image, atol=1e-5)  # values "slices": a 1-slice volume is the image


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ({"arch": "hf"}, r"image\.path: required for arch 'hf'"),
        ({"arch": "hf", "hf_config": {"hidden_size": 8}}, r"image\.hf_config: expected a transformers config mapping with a model_type"),
        ({"arch": "hf", "path": "x", "hf_config": {"model_type": "vit"}}, r"image\.path: give path .* or hf_config .*, not both"),
        ({"arch": "hf", "path": "x", "image_mean": 0.5}, r"image\.image_mean: expected a list of numbers"),
        ({"arch": "hf", "path": "x", "image_std": [0.2, 0.0, 0.2]}, r"image\.image_std: must be at least"),
        ({"arch": "hf", "path": "x", "trust_remote_code": "yes"}, r"image\.trust_remote_code: expected true/false"),
        ({"arch": "hf", "path": "x", "widen_factor": 2}, r"image\.widen_factor: unknown key"),
    ],
)
def test_invalid_hf_image_sections_name_the_field(image, message):
    with pytest.raises(ModelConfigError, match=message):
        get_config("tiny-resnet18", image=image)


def test_unloadable_towers_are_clear_errors(tmp_path):
    with pytest.raises(ModelConfigError, match=r"image\.path: cannot load a transformers model from .*missing-vit"):
        _hf_model(tmp_path / "missing-vit")
    with pytest.raises(ModelConfigError, match=r"text\.revision: only used with source 'pretrained'"):
        get_config("tiny-resnet18", text={"revision": "main"})


CONFIG_CODE = '''
from transformers import PretrainedConfig


class TinyReportConfig(PretrainedConfig):
    model_type = "tiny-report-encoder"

    def __init__(self, vocab_size=160, hidden_size=16, max_position_embeddings=64, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
'''
MODEL_CODE = '''
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput

from .configuration_tiny_report import TinyReportConfig


class TinyReportBody(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.mix = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, input_ids, attention_mask=None):
        return BaseModelOutput(last_hidden_state=torch.tanh(self.mix(self.tokens(input_ids))))


class TinyReportModel(PreTrainedModel):
    """Like CXR-BERT: a body, and a language-model head that its forward runs too."""

    config_class = TinyReportConfig
    base_model_prefix = "body"

    def __init__(self, config):
        super().__init__(config)
        self.body = TinyReportBody(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, **kwargs):
        hidden = self.body(input_ids, attention_mask).last_hidden_state
        return MaskedLMOutput(logits=self.lm_head(hidden), hidden_states=(hidden,))
'''


@pytest.fixture()
def custom_code_folder(tmp_path) -> Path:
    """A text model whose classes are custom code (``auto_map`` in config.json), saved with its tokenizer."""
    folder = tmp_path / "tiny-report"
    folder.mkdir()
    (folder / "configuration_tiny_report.py").write_text(CONFIG_CODE)
    (folder / "modeling_tiny_report.py").write_text(MODEL_CODE)
    auto_map = {"AutoConfig": "configuration_tiny_report.TinyReportConfig", "AutoModel": "modeling_tiny_report.TinyReportModel"}
    (folder / "config.json").write_text(json.dumps({"model_type": "tiny-report-encoder", "auto_map": auto_map}))
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    AutoModel.from_config(config, trust_remote_code=True).save_pretrained(folder)
    character_tokenizer(64).save_pretrained(folder)
    return folder


def test_text_tower_with_custom_code_needs_trust_remote_code_and_survives_save(towers, custom_code_folder, tmp_path):
    text = {"source": "pretrained", "path": str(custom_code_folder), "pooling": "mean"}
    with pytest.raises(ModelConfigError, match=r"text\.trust_remote_code: .*holds custom model code"):
        _hf_model(towers["resnet"][0], text=text)

    model = _hf_model(towers["resnet"][0], text={**text, "trust_remote_code": True}).eval()
    custom = model.text_encoder.model
    assert type(custom).__name__ == "TinyReportModel"
    saved = load_file(str(custom_code_folder / "model.safetensors"))
    assert torch.equal(custom.body.tokens.weight, saved["body.tokens.weight"])
    model.encode_text(**model.tokenize(TEXTS)).sum().backward()  # only the body runs; the head stays frozen
    assert not any(p.requires_grad for p in custom.lm_head.parameters())
    assert all(p.grad is not None for p in custom.body.parameters())

    model.save_pretrained(tmp_path / "saved")
    shutil.rmtree(custom_code_folder)  # the saved model keeps the code it needs
    assert (tmp_path / "saved" / "text_code" / "modeling_tiny_report.py").is_file()
    loaded = load_pretrained(tmp_path / "saved").eval()
    batch = model.tokenize(TEXTS)
    with torch.no_grad():
        assert torch.equal(loaded.encode_text(**batch), model.encode_text(**batch))


def _groups_of(groups: list[dict]) -> dict[int, dict]:
    return {id(p): g for g in groups for p in g["params"]}


def test_parameter_groups_skip_decay_on_vectors_embeddings_and_logits_and_set_tower_rates(towers):
    model = _hf_model(towers["vit"][0], loss={"weights": {"convirt": 0.0, "siglip": 1.0}})
    groups = model.parameter_groups(1e-3, 0.1, image_lr=1e-4, text_lr=2e-5)
    by_param = _groups_of(groups)
    assert len(by_param) == sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())
    names = {g["name"] for g in groups}
    assert names == {f"{part}/{kind}" for part in ("image", "image_head", "text", "heads") for kind in ("decay", "no_decay")}
    for g in groups:
        assert g["weight_decay"] == (0.1 if g["name"].endswith("/decay") else 0.0)

    vit, bert = model.image_encoder.model, model.text_encoder.model
    no_decay = [vit.embeddings.cls_token, vit.embeddings.position_embeddings, vit.layernorm.weight,
                vit.layers[0].attention.q_proj.bias, bert.embeddings.word_embeddings.weight,
                bert.embeddings.position_embeddings.weight, bert.embeddings.LayerNorm.weight,
                model.image_projection.net[0].bias, model.logit_scale, model.logit_bias]  # fmt: skip
    assert [by_param[id(p)]["weight_decay"] for p in no_decay] == [0.0] * len(no_decay)
    decay = [vit.embeddings.patch_embeddings.projection.weight, vit.layers[0].attention.q_proj.weight,
             bert.encoder.layer[0].intermediate.dense.weight, model.text_projection.net[0].weight]  # fmt: skip
    assert [by_param[id(p)]["weight_decay"] for p in decay] == [0.1] * len(decay)

    lr_of = {name: {by_param[id(p)]["lr"] for p in module.parameters()} for name, module in (
        ("image", model.image_encoder), ("image_head", model.image_projection), ("text", model.text_encoder),
        ("text_head", model.text_projection))}  # fmt: skip
    assert lr_of == {"image": {1e-4}, "image_head": {1e-3}, "text": {2e-5}, "text_head": {1e-3}}
    assert {g["lr"] for g in model.parameter_groups(1e-3, text_lr=0.0)} == {1e-3}  # 0 / None: optim.lr

    optimizer = torch.optim.AdamW(groups)
    scheduler = cosine_with_warmup(optimizer, total_steps=10, warmup_steps=2)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    factor = 0.5 * (1 + math.cos(math.pi * 3 / 8))  # the schedule scales every group's own rate alike
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([g["initial_lr"] * factor for g in optimizer.param_groups])


@pytest.mark.parametrize("recipe", ["mimic-vit-hf.yaml", "mimic-resnet50.yaml"])
def test_pretrained_recipes_resolve_offline_with_per_tower_rates(recipe):
    settings = load_config(PretrainConfig, REPO_ROOT / "configs" / "pretrain" / recipe)
    config = get_config(settings.model.name, **settings.model.overrides)  # hub ids: nothing is fetched to resolve
    assert config["image"]["arch"] == "hf" and config["text"]["source"] == "pretrained"
    assert settings.optim.text_lr == 2e-5 < settings.optim.lr


def test_recipe_trains_two_steps_from_pretrained_folders(towers, bert_folder, tiny_cache, tmp_path, sqlite_tracking):
    """configs/pretrain/mimic-vit-hf.yaml with the hub ids replaced by local folders, through ``medvl pretrain``."""
    vit_folder, vit_saved = towers["vit"]
    argv = ["pretrain", str(REPO_ROOT / "configs/pretrain/mimic-vit-hf.yaml"), f"output_dir={tmp_path}", "run_name=r",
            f"data.cache={tiny_cache}", "data.workers=0", f"model.overrides.image.path={vit_folder}",
            f"model.overrides.text.path={bert_folder}", "train.steps=2", "train.batch_size=8", "train.log_every=1",
            "train.eval_every=0", "train.checkpoint_every=2", "optim.warmup_steps=0", "optim.image_lr=1e-9",
            "tracking.log_model=false"]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]

    model = load_pretrained(tmp_path / "r" / "model")
    assert model.config["image"]["arch"] == "hf" and model.config["image"]["hf_config"]["model_type"] == "vit"
    image_drift = max((v - vit_saved[k]).abs().max().item() for k, v in model.image_encoder.model.state_dict().items())
    bert_saved = load_file(str(bert_folder / "model.safetensors"))
    text_drift = max((v - bert_saved[k]).abs().max().item() for k, v in model.text_encoder.model.state_dict().items())
    assert image_drift < 1e-7  # started from the saved weights, moved at image_lr 1e-9
    assert text_drift > 1e-5  # the text tower trained at text_lr 2e-5
