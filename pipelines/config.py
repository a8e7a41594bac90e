"""Settings of ``pipelines run pretrain-evaluate-register`` (a YAML file plus ``key=value`` overrides).

Relative paths in the file (sources, the pretraining settings file, the gate policy) are taken relative to the
file's own folder, so a config can live beside its data. See ``pipelines/configs/*.yaml`` for examples.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from medvl.config import ConfigError, load_config


@dataclass
class SourceSettings:
    """One source tree read by ``medvl ingest`` (``adapter`` as in ``medvl ingest --list``).

    ``required: false`` skips a source whose path does not exist (e.g. the real-data bundle on a fresh machine).
    """

    adapter: str = ""
    path: str = ""
    options: dict[str, str] = field(default_factory=dict)
    required: bool = True


@dataclass
class DeidSettings:
    """What to do when the cohort still carries direct identifiers: ``refuse`` stops the pipeline."""

    policy: Literal["refuse", "warn"] = "refuse"


@dataclass
class CacheSettings:
    """Training cache preparation (see ``medvl cache``; ``crop_body`` crops CT to the body, as ``--crop-body``)."""

    size: int = 128
    ct_window: str = "lung"
    crop_body: bool = False
    workers: int = 0


@dataclass
class PretrainSettings:
    """``medvl pretrain`` settings: an optional YAML file, then ``key=value`` overrides.

    The pipeline sets the cache, run folder and tracking URI itself.
    """

    config: str = ""
    overrides: list[str] = field(default_factory=list)


@dataclass
class EvaluateSettings:
    """The benchx evaluation of the new model (and of a baseline such as ``random:tiny-resnet18``)."""

    suite: str = "quick"
    tasks: list[str] = field(default_factory=list)
    fractions: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    baseline: str = ""


@dataclass
class GateSettings:
    """The promotion gate: a ``governance.gates`` policy file and the alias a passing version gets."""

    policy: str = ""
    alias: str = "champion"
    audit_log: str = ""


@dataclass
class PipelineConfig:
    """Everything ``pretrain-evaluate-register`` needs; ``model_name`` is the registered model."""

    name: str = "medvl-pipeline"
    model_name: str = "medvl-pipeline"
    tracking_uri: str = ""
    sources: list[SourceSettings] = field(default_factory=list)
    deid: DeidSettings = field(default_factory=DeidSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    pretrain: PretrainSettings = field(default_factory=PretrainSettings)
    evaluate: EvaluateSettings = field(default_factory=EvaluateSettings)
    card: bool = True
    gate: GateSettings = field(default_factory=GateSettings)


def load_pipeline_config(path: str | Path, overrides: list[str] | None = None) -> PipelineConfig:
    """Read and check a pipeline config; relative paths become absolute (relative to the file's folder).

    Raises:
        ConfigError: unreadable YAML, unknown or mistyped settings, no source, a missing settings file.
    """
    path = Path(path)
    try:
        config = load_config(PipelineConfig, path, overrides or [])
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    base = path.resolve().parent
    if not config.sources:
        raise ConfigError(f"{path}: 'sources' is empty; list at least one {{adapter, path}}")
    for i, source in enumerate(config.sources):
        if not source.adapter or not source.path:
            raise ConfigError(f"{path}: sources[{i}] needs both 'adapter' and 'path'")
        unset = _unset_variables(source.path)
        if unset and source.required:
            raise ConfigError(f"{path}: sources[{i}].path '{source.path}' needs ${unset[0]}, which is not set; set it to "
                              f"the source's folder, e.g. {unset[0]}=phantoms after 'medvl synth -o phantoms'")
        source.path = _absolute(source.path, base)
    for label, value in (("pretrain.config", config.pretrain.config), ("gate.policy", config.gate.policy)):
        if value and not Path(_absolute(value, base)).is_file():
            raise ConfigError(f"{path}: {label} '{value}' not found (relative paths start at {base})")
    config.pretrain.config = _absolute(config.pretrain.config, base) if config.pretrain.config else ""
    config.gate.policy = _absolute(config.gate.policy, base) if config.gate.policy else ""
    return config


def _unset_variables(value: str) -> list[str]:
    """The ``$VAR`` / ``${VAR}`` names in ``value`` that the environment does not set."""
    return [name for name in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", value) if name not in os.environ]


def _absolute(value: str, base: Path) -> str:
    """``value`` with ``~`` and ``$VARS`` expanded, made absolute: against ``base`` (the config's folder), or
    against the current folder when the value starts with a variable (``MEDVL_PHANTOM_DIR=phantoms`` on the
    command line means ./phantoms)."""
    expanded = Path(os.path.expandvars(value)).expanduser()
    anchor = Path.cwd() if value.lstrip().startswith("$") else base
    return str(expanded if expanded.is_absolute() else (anchor / expanded).resolve())
