"""``medvl cache --shard i/n`` + ``--merge``: the merged cache equals an unsharded build; refusals name the part."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from medvl.cli import main
from medvl.data.cache import CachedCohort, CacheError, image_file
from medvl.data.cache_build import build_cache, merge_parts
from medvl.data.preprocess import PrepSettings
from tests.test_data_cache import SIZE, cohort  # noqa: F401  (the fixture)

TINY_MB = str(1 / 2**20)  # one image per shard: parts hold several shards, so the merge must renumber them


def cache_args(*extra: str) -> list[str]:
    return ["--size", str(SIZE), "--shard-mb", TINY_MB, "-q", *extra]


def build_parts(manifest: Path, root: Path, count: int = 3) -> list[Path]:
    parts = [root / f"part-{i}-of-{count}" for i in range(count)]
    for i, part in enumerate(parts):
        assert main(["cache", str(manifest), "-o", str(part), "--shard", f"{i}/{count}", *cache_args()]) == 0
    return parts


def quarantine(cache: Path) -> set[tuple]:
    table = pd.read_csv(cache / "quarantine.csv", keep_default_na=False)
    return set(table.itertuples(index=False, name=None))


def assert_same_items(expected: CachedCohort, got: CachedCohort) -> None:
    assert len(got) == len(expected)
    assert got.splits.tolist() == expected.splits.tolist()
    for i in range(len(expected)):
        a, b = expected[i], got[i]
        assert a.keys() == b.keys()
        for field, value in a.items():
            if isinstance(value, torch.Tensor):
                torch.testing.assert_close(b[field], value, rtol=0, atol=0, equal_nan=True, msg=f"{i} {field}")
            else:
                assert b[field] == value, (i, field)


def test_three_parts_merged_equal_the_unsharded_build(cohort, tmp_path, capsys):  # noqa: F811
    whole = tmp_path / "whole"
    assert main(["cache", str(cohort), "-o", str(whole), *cache_args()]) == 0
    parts = build_parts(cohort, tmp_path / "parts")
    # contiguous blocks of the 5 studies in id order: a | b, c | d (broken), e (text only): part 2 has no image
    assert [json.loads((p / "cache.json").read_text())["items"] for p in parts] == [1, 3, 0]
    with pytest.raises(CacheError, match="part 1/3 of a sharded build"):
        CachedCohort(parts[1])
    capsys.readouterr()

    merged = tmp_path / "merged"
    assert main(["cache", "--merge", *map(str, reversed(parts)), "-o", str(merged), "-q"]) == 0
    assert "4 images (14 slices), 2 quarantined; merged in" in capsys.readouterr().out
    expected, got = CachedCohort(whole), CachedCohort(merged)
    assert got.key == expected.key and got.label_space == expected.label_space
    assert_same_items(expected, got)
    assert quarantine(merged) == quarantine(whole)
    meta_whole, meta_merged = (json.loads((c / "cache.json").read_text()) for c in (whole, merged))
    for field in ("key", "items", "slices", "studies", "quarantined", "shards", "part", "complete"):
        assert meta_merged[field] == meta_whole[field], field
    assert meta_merged["merged_from"] == [str(p.resolve()) for p in parts]
    assert image_file(merged, 0).stat().st_ino == image_file(parts[0], 0).stat().st_ino  # linked, not copied
    assert main(["cache", "--merge", *map(str, parts), "-o", str(merged), "-q"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["cache", str(cohort), "-o", str(merged), *cache_args()]) == 0  # the unsharded build agrees
    assert "up to date" in capsys.readouterr().out


def test_a_part_resumes_and_refuses_another_part_or_the_whole(cohort, tmp_path, capsys):  # noqa: F811
    part = tmp_path / "part-1-of-3"
    first = build_cache(cohort, part, PrepSettings(size=SIZE), part=(1, 3), progress=False)
    again = build_cache(cohort, part, PrepSettings(size=SIZE), part=(1, 3), progress=False)
    assert again.up_to_date and again.key == first.key and again.items == first.items == 3
    with pytest.raises(CacheError, match="holds part 1/3 of this cache, not the whole"):
        build_cache(cohort, part, PrepSettings(size=SIZE), progress=False)
    with pytest.raises(CacheError, match="holds part 1/3 of this cache, not part 2/3"):
        build_cache(cohort, part, PrepSettings(size=SIZE), part=(2, 3), progress=False)


@pytest.mark.parametrize("shard", ["4/3", "3/3", "-1/3", "0/0", "1", "a/b"])
def test_bad_shard_is_one_line_exit_2(cohort, tmp_path, capsys, shard):  # noqa: F811
    assert main(["cache", str(cohort), "-o", str(tmp_path / "p"), f"--shard={shard}", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medvl cache: shard ") and shard in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "p").exists()


def merge_error(parts: list[Path], out: Path, capsys) -> str:
    assert main(["cache", "--merge", *map(str, parts), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medvl cache: ") and len(err.splitlines()) == 1, err
    return err


def test_merge_refuses_missing_incomplete_repeated_or_foreign_parts(cohort, tmp_path, capsys):  # noqa: F811
    parts = build_parts(cohort, tmp_path / "parts")
    out = tmp_path / "merged"
    capsys.readouterr()
    with pytest.raises(CacheError, match="no part folders"):
        merge_parts([], out)
    assert "missing part 1/3" in merge_error([parts[0], parts[2]], out, capsys)
    assert f"{parts[0]}: part 0/3 is given twice" in merge_error([*parts, parts[0]], out, capsys)
    assert f"{tmp_path / 'nowhere'}: not a medvl cache" in merge_error([*parts[:2], tmp_path / "nowhere"], out, capsys)

    meta_path = parts[1] / "cache.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "complete": False}))
    err = merge_error(parts, out, capsys)
    assert f"{parts[1]}: part 1/3 is incomplete" in err and "--shard 1/3" in err
    meta_path.write_text(json.dumps(meta))

    other = tmp_path / "other" / "part-1-of-3"
    assert main(["cache", str(cohort), "-o", str(other), "--shard", "1/3", "--size", "24", "-q"]) == 0
    capsys.readouterr()
    assert f"{other}: built from another manifest or with other settings" in merge_error(
        [parts[0], other, parts[2]], out, capsys)
    halves = [tmp_path / "halves" / f"part-{i}-of-2" for i in range(2)]
    assert main(["cache", str(cohort), "-o", str(halves[0]), "--shard", "0/2", *cache_args()]) == 0
    capsys.readouterr()
    assert f"{halves[0]}: part 0/2 of a split into 2 parts" in merge_error([*parts[:2], halves[0]], out, capsys)
    whole = tmp_path / "whole"
    build_cache(cohort, whole, PrepSettings(size=SIZE), progress=False)
    assert f"{whole}: a whole cache, not a part" in merge_error([whole, *parts[1:]], out, capsys)
    assert not out.exists()
    assert main(["cache", "--merge", *map(str, parts), "-o", str(out), "-q"]) == 0
    assert len(CachedCohort(out)) == 4
