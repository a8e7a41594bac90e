"""`medvl pretrain` refusals a user meets on the README tour."""

from __future__ import annotations

from pathlib import Path

import pytest

from medvl.cli import main as medvl_main

REPO = Path(__file__).resolve().parents[1]


def test_a_cache_of_other_settings_is_refused_with_what_to_set(tiny_cache, tmp_path, capsys):
    manifest = tiny_cache.parent / "m.parquet"
    before = sorted(p.name for p in tiny_cache.iterdir())
    code = medvl_main(["pretrain", str(REPO / "configs/pretrain/phantom-tiny.yaml"), f"data.manifest={manifest}",
                       f"data.cache={tiny_cache}", f"output_dir={tmp_path}"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert "at 64 px" in err and "data.image_size=128" in err and "data.image_size=64" in err
    assert "--overwrite'" in err and "medvl cache" in err and "Traceback" not in err
    assert sorted(p.name for p in tiny_cache.iterdir()) == before


def test_overrides_may_follow_the_options(capsys):
    recipe = str(REPO / "configs/pretrain/phantom-tiny.yaml")
    assert medvl_main(["pretrain", recipe, "--print-config", "train.steps=7", "data.image_size=64"]) == 0
    out = capsys.readouterr().out
    assert "steps: 7" in out and "image_size: 64" in out
    with pytest.raises(SystemExit) as refused:  # anything else after the options is still refused
        medvl_main(["pretrain", recipe, "--print-config", "--no-such-option"])
    assert refused.value.code == 2 and "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_a_repeat_threshold_that_is_no_frequency_is_refused(tiny_cache, tmp_path, capsys):
    code = medvl_main(["pretrain", f"data.cache={tiny_cache}", "data.image_size=64", "data.repeat_threshold=1.5",
                       f"output_dir={tmp_path}", "tracking.log_model=false"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert "data.repeat_threshold must be in [0, 1)" in err and "1.5" in err and "Traceback" not in err
