"""`medvl pretrain` refusals a user meets on the README tour."""

from __future__ import annotations

from pathlib import Path

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
