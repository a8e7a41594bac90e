"""Typed run settings: YAML + key=value overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from medvl.config import ConfigError, config_hash, flatten, load_config, parse_overrides, save_config, to_dict


@dataclass
class Optim:
    lr: float = 1e-4
    schedule: Literal["cosine", "plateau"] = "cosine"


@dataclass
class Settings:
    name: str = "run"
    steps: int = 10
    amp: bool = False
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    crop: tuple[float, float] = (0.6, 1.0)
    resume: str | None = None
    optim: Optim = field(default_factory=Optim)


def test_defaults_file_and_overrides_merge(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"steps": 50, "optim": {"lr": 0.001}}))
    cfg = load_config(Settings, f, ["optim.schedule=plateau", "amp=true", "sizes=4,8", "crop=[0.5, 0.9]"])
    assert cfg.steps == 50
    assert cfg.optim == Optim(lr=0.001, schedule="plateau")
    assert cfg.amp is True and cfg.sizes == [4, 8] and cfg.crop == (0.5, 0.9)
    assert cfg.name == "run" and cfg.resume is None


def test_int_promoted_to_float_and_none_allowed():
    cfg = load_config(Settings, None, ["optim.lr=1", "resume=null"])
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.resume is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stepz=3", "unknown setting(s) ['stepz']"),
        ("optim.lrr=3", "optim.lrr"),
        ("steps=abc", "steps: expected an integer"),
        ("amp=maybe", "amp: expected true/false"),
        ("optim.schedule=linear", "optim.schedule"),
        ("crop=[1]", "crop: expected 2 values"),
        ("noequals", "key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=None) as info:
        load_config(Settings, None, [override])
    assert message in str(info.value)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Settings, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Settings, bad)


def test_save_roundtrip_and_hash(tmp_path):
    cfg = load_config(Settings, None, ["steps=7"])
    path = save_config(cfg, tmp_path / "resolved.yaml")
    again = load_config(Settings, path)
    assert again == cfg
    assert config_hash(again) == config_hash(cfg)
    assert config_hash(load_config(Settings, None, ["steps=8"])) != config_hash(cfg)


def test_flatten_and_parse_overrides():
    assert flatten(to_dict(Settings()))["optim.lr"] == 1e-4
    assert parse_overrides(["a.b=1", "a.c=x"]) == {"a": {"b": 1, "c": "x"}}
