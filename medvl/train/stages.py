"""Multi-stage recipes: one ``medvl pretrain`` command runs RadCLIP's 2D stage, then its volume stage.

A recipe may list ``stages``: each is a mapping with a ``name`` and the settings it changes; everything else in
the file is shared. Stage ``k`` runs as ``<run_name>-<name>`` and starts from the model stage ``k-1`` exported
(``model.init_from``, unless the stage sets it), e.g.::

    run_name: ct
    model: {name: tiny-radclip-resnet18}
    stages:
      - {name: 2d, data: {kinds: all}, train: {steps: 400}}
      - {name: volume, data: {kinds: 3d}, model: {overrides: {schedule: {stage: volume}}}, train: {steps: 200}}

``key=value`` overrides on the command line apply to every stage, except that only the last stage registers its
model (``tracking.register_as``) and fits its calibration (``train.calibrate``). With ``--resume`` a stage whose
model was exported (``model/lineage.json``, the last file a finished run writes) is skipped, the first unfinished
one continues from its checkpoint, and the rest start after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medvl.config import ConfigError, build_settings, merge_settings, read_settings_file
from medvl.train.checkpoint import LAST
from medvl.train.settings import PretrainConfig

STAGES_KEY = "stages"
FINISHED_MARKER = Path("model") / "lineage.json"
SHARDED_CHECKPOINT = "last.dcp"


@dataclass(frozen=True)
class Stage:
    """One run of a recipe: its name (empty for a single-stage recipe) and resolved settings."""

    name: str
    config: PretrainConfig

    @property
    def run_dir(self) -> Path:
        return Path(self.config.output_dir) / self.config.run_name

    @property
    def finished(self) -> bool:
        """True when this run exported its model."""
        return (self.run_dir / FINISHED_MARKER).is_file()

    @property
    def has_checkpoint(self) -> bool:
        return (self.run_dir / LAST).is_file() or (self.run_dir / SHARDED_CHECKPOINT).is_dir()


def _stage_list(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: '{STAGES_KEY}' must be a non-empty list of mappings, each with a 'name'")
    names: set[str] = set()
    stages = []
    for i, stage in enumerate(value):
        if not isinstance(stage, Mapping) or not isinstance(stage.get("name"), str) or not stage["name"]:
            raise ConfigError(f"{where}: {STAGES_KEY}[{i}] must be a mapping with a non-empty 'name'")
        if stage["name"] in names:
            raise ConfigError(f"{where}: {STAGES_KEY}[{i}]: the name '{stage['name']}' is used twice")
        names.add(stage["name"])
        stages.append(dict(stage))
    return stages


def plan_stages(path: str | Path | None, overrides: Iterable[str] = ()) -> list[Stage]:
    """The runs of a settings file (one, or one per listed stage) with the command-line overrides applied."""
    overrides = list(overrides)
    values = read_settings_file(path) if path is not None else {}
    where = str(path) if path is not None else ""
    if STAGES_KEY not in values:
        return [Stage("", build_settings(PretrainConfig, values, overrides, where))]
    shared = {k: v for k, v in values.items() if k != STAGES_KEY}
    planned: list[Stage] = []
    for stage in _stage_list(values[STAGES_KEY], where):
        name = stage.pop("name")
        config = build_settings(PretrainConfig, merge_settings(shared, stage), overrides, f"{where}: stage '{name}'")
        config.run_name = f"{config.run_name}-{name}"
        if planned and not config.model.init_from:
            config.model.init_from = str(planned[-1].run_dir / "model")
        planned.append(Stage(name, config))
    for stage in planned[:-1]:  # the recipe's model is the last stage's: only it is registered and calibrated
        stage.config.tracking.register_as = ""
        stage.config.train.calibrate = False
    return planned


def stages_to_run(stages: list[Stage], resume: bool) -> list[tuple[Stage, bool]]:
    """``(stage, resume it)`` for each stage still to run: with ``resume``, finished stages are left out and the
    first unfinished one resumes when it has a checkpoint."""
    if not resume or len(stages) == 1:
        return [(stage, resume) for stage in stages]
    todo = [stage for stage in stages if not stage.finished]
    return [(stage, i == 0 and stage.has_checkpoint) for i, stage in enumerate(todo)]
