"""One typed mechanism (medvl.config.build) for run settings, architectures, cards, suites and gate policies."""

from __future__ import annotations

import pytest
import yaml

from benchx.cards import parse_card
from benchx.errors import CardError
from benchx.suites import load_suite
from governance.gates import GateInputError, load_policy
from medvl.config import ConfigError
from medvl.models.config import ModelConfigError, resolve_config, resolve_loss_config
from tests.benchx_tiny import TINY_2D

RULE = {"dataset": "phantom-2d", "task": "retrieval"}


def _write(path, doc):
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.mark.parametrize("error", [CardError, GateInputError, ModelConfigError])
def test_every_schema_error_is_a_config_error(error):
    assert issubclass(error, ConfigError)


@pytest.mark.parametrize(
    ("doc", "key", "reason"),
    [
        ({"datasets": ["phantom-2d"], "seedz": [0]}, "seedz", "unknown field(s) ['seedz']"),
        ({"datasets": ["phantom-2d"], "bootstrap": "many"}, "bootstrap", "expected an integer, got 'many'"),
        ({"datasets": ["phantom-2d"], "bootstrap": 0}, "bootstrap", "must be at least 1, got 0"),
        ({"description": "no datasets"}, "datasets", "non-empty 'datasets' list"),
    ],
)
def test_suite_refusals_name_the_key(tmp_path, doc, key, reason):
    with pytest.raises(CardError) as info:
        load_suite(_write(tmp_path / "s.yaml", doc))
    assert info.value.key == info.value.field == key and reason in info.value.reason


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"required_tasks": [{**RULE, "metrik": "auroc"}]}, "required_tasks[1].metrik: unknown field(s) ['metrik']"),
        ({"required_tasks": [RULE], "beat_baseline": {"results": "b.json", "margin": "some"}},
         "beat_baseline.margin: expected a number, got 'some'"),
        ({"required_tasks": RULE}, "required_tasks: expected a list"),
        ({"required_tasks": ["retrieval"]}, "required_tasks[1]: expected a mapping of TaskRule fields"),
    ],
)
def test_policy_refusals_name_the_key(tmp_path, doc, message):
    with pytest.raises(GateInputError) as info:
        load_policy(_write(tmp_path / "p.yaml", doc))
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"projection": {"hidden_dims": 8}}, "m: projection.hidden_dims: unknown key(s) ['hidden_dims']"),
        ({"schedule": {"freeze_image_encoder": "yes"}}, "m: schedule.freeze_image_encoder: expected true/false"),
        ({"logit": {"init_bias": "low"}}, "m: logit.init_bias: expected a number, got 'low'"),
    ],
)
def test_architecture_section_refusals_name_the_key(raw, message):
    with pytest.raises(ModelConfigError) as info:
        resolve_config({"image": {"arch": "resnet18"}, **raw}, "m")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("section", "given", "key", "reason"),
    [
        ("image", {"arch": "vit", "patch_sise": 8}, "image.patch_sise", "unknown key(s) ['patch_sise']"),
        ("image", {"arch": "hf", "path": "x", "image_std": ["wide"]}, "image.image_std[1]", "expected a number, got 'wide'"),
        ("text", {"source": "minilm", "pooler": "cls"}, "text.pooler", "unknown key(s) ['pooler']"),
        ("text", {"tokenizer": "characters", "max_length": "long"}, "text.max_length", "expected an integer, got 'long'"),
        ("slice_pooling", {"chunk": 4}, "slice_pooling.chunk", "unknown key(s) ['chunk']"),
        ("slice_pooling", {"checkpoint": "no"}, "slice_pooling.checkpoint", "expected true/false, got 'no'"),
        ("volume_encoder", {"stride": 2}, "volume_encoder.stride", "unknown key(s) ['stride']"),
        ("volume_encoder", {"depth": 1.5}, "volume_encoder.depth", "expected an integer, got 1.5"),
    ],
)
def test_model_section_refusals_name_the_key(section, given, key, reason):
    raw = {"image": {"arch": "resnet18"}, "text": {"tokenizer": "characters"}, section: given}
    with pytest.raises(ModelConfigError) as info:
        resolve_config(raw, "m")
    assert info.value.where == f"m: {key}" and reason in info.value.reason


def test_architecture_sections_resolve_to_plain_dicts_keeping_ints():
    loss = resolve_loss_config({"weights": {"clip": 1}, "lam": None}, "loss")
    assert loss["weights"] == {"convirt": 1.0, "clip": 1, "siglip": 0.0, "soft_target": 0.0, "concept": 0.0,
                               "concept_spread": 0.0, "polarity": 0.0}
    assert isinstance(loss["weights"]["clip"], int) and loss["lam"] == 0.75  # null takes the default


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        ({"preprocess": {"sise": 64}}, "preprocess.sise", "unknown field(s) ['sise']"),
        ({"preprocess": {"size": "big"}}, "preprocess.size", "expected an integer, got 'big'"),
        ({"segmentation": {"encoding": "rle", "classes": {"Cardiomegaly": 1}}}, "segmentation.encoding", "is not one of"),
    ],
)
def test_card_refusals_name_the_key(change, key, reason):
    with pytest.raises(CardError) as info:
        parse_card({**TINY_2D, **change}, "card.yaml")
    assert info.value.field == key and reason in str(info.value)
