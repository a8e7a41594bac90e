"""Staged recipes: RadCLIP's 2D and volume stages from one settings file, chained and resumable."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medvl.cli import main as medvl_main
from medvl.config import ConfigError
from medvl.train.stages import plan_stages, stages_to_run

REPO = Path(__file__).resolve().parents[1]


def _recipe(tmp_path: Path, stages: object) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"run_name": "ct", "output_dir": str(tmp_path / "runs"), "optim": {"lr": 0.01},
                                    "train": {"steps": 50}, "stages": stages}))  # fmt: skip
    return path


def test_stages_share_settings_chain_models_and_take_every_override(tmp_path):
    path = _recipe(tmp_path, [{"name": "2d", "data": {"kinds": "all"}},
                              {"name": "volume", "train": {"steps": 20}, "model": {"overrides": {"schedule": {"stage": "volume"}}}}])  # fmt: skip
    first, second = plan_stages(path, ["optim.lr=0.002", "tracking.register_as=ct-model"])
    assert (first.config.tracking.register_as, second.config.tracking.register_as) == ("", "ct-model")
    assert (first.config.train.calibrate, second.config.train.calibrate) == (False, True)  # only the model used
    assert (first.name, first.config.run_name, second.config.run_name) == ("2d", "ct-2d", "ct-volume")
    assert first.config.data.kinds == "all" and second.config.data.kinds == "auto"
    assert (first.config.train.steps, second.config.train.steps) == (50, 20)
    assert first.config.optim.lr == second.config.optim.lr == 0.002  # command-line overrides reach every stage
    assert first.config.model.init_from == ""
    assert second.config.model.init_from == str(tmp_path / "runs" / "ct-2d" / "model")
    assert second.config.model.overrides == {"schedule": {"stage": "volume"}}


def test_a_recipe_without_stages_is_one_plain_run(tmp_path):
    (stage,) = plan_stages(REPO / "configs" / "pretrain" / "phantom-tiny.yaml", ["run_name=x"])
    assert stage.name == "" and stage.config.run_name == "x"
    assert stages_to_run([stage], resume=True) == [(stage, True)]


@pytest.mark.parametrize(
    ("stages", "message"),
    [([], "non-empty list"), ([{"data": {}}], r"stages\[0\] must be a mapping with a non-empty 'name'"),
     ([{"name": "a"}, {"name": "a"}], "the name 'a' is used twice"),
     ([{"name": "a", "train": {"stepz": 3}}], "stage 'a'.*stepz")],
)  # fmt: skip
def test_bad_stage_lists_are_refused_by_name(tmp_path, stages, message):
    with pytest.raises(ConfigError, match=message):
        plan_stages(_recipe(tmp_path, stages))


def test_resume_skips_finished_stages_and_continues_the_first_unfinished(tmp_path):
    stages = plan_stages(_recipe(tmp_path, [{"name": "a"}, {"name": "b"}, {"name": "c"}]))
    assert stages_to_run(stages, resume=False) == [(s, False) for s in stages]
    assert stages_to_run(stages, resume=True) == [(s, False) for s in stages]  # nothing on disk yet
    (stages[0].run_dir / "model").mkdir(parents=True)
    (stages[0].run_dir / "model" / "lineage.json").write_text("{}")
    stages[1].run_dir.mkdir(parents=True)
    (stages[1].run_dir / "last.pt").write_bytes(b"")
    assert stages_to_run(stages, resume=True) == [(stages[1], True), (stages[2], False)]


def test_print_config_shows_every_stage(tmp_path, capsys):
    path = _recipe(tmp_path, [{"name": "2d"}, {"name": "volume"}])
    assert medvl_main(["pretrain", str(path), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "# stage 2d" in out and "# stage volume" in out and "run_name: ct-volume" in out
    assert medvl_main(["pretrain", str(_recipe(tmp_path, [{"name": ""}])), "--print-config"]) == 2
    assert "non-empty 'name'" in capsys.readouterr().err
