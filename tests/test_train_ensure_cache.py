"""``ensure_cache``: a single process builds the cache; a distributed job only checks it and refuses at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medvl.data.cache import CacheError
from medvl.data.cache_build import build_cache
from medvl.data.preprocess import PrepSettings
from medvl.train.distributed import DistInfo
from medvl.train.model_setup import ensure_cache
from medvl.train.settings import DataSettings
from tests.servers import free_port
from tests.test_data_cache import SIZE, cohort  # noqa: F401  (the fixture)

RANK_1_OF_2 = DistInfo(rank=1, world_size=2)


def stamps(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_single_process_builds_from_the_manifest(cohort, tmp_path):  # noqa: F811
    cohort_set = ensure_cache(DataSettings(cache=str(tmp_path / "c"), manifest=str(cohort), image_size=SIZE), DistInfo())
    assert len(cohort_set) == 4 and cohort_set.size == SIZE


def test_distributed_job_refuses_a_missing_cache_without_writing(cohort, tmp_path):  # noqa: F811
    cache = tmp_path / "c"
    with pytest.raises(FileNotFoundError) as refused:
        ensure_cache(DataSettings(cache=str(cache), manifest=str(cohort), image_size=SIZE), RANK_1_OF_2)
    message = str(refused.value)
    assert message.startswith(f"{cache}: no complete cache here, and a job of 2 processes does not build one")
    assert f"'medvl cache {cohort} -o {cache} --size {SIZE} --ct-window lung'" in message and "--merge" in message
    assert not cache.exists()


def test_distributed_job_uses_a_current_cache_and_refuses_a_stale_or_partial_one(cohort, tmp_path):  # noqa: F811
    cache = tmp_path / "c"
    build_cache(cohort, cache, PrepSettings(size=SIZE), progress=False)
    before = stamps(cache)
    assert len(ensure_cache(DataSettings(cache=str(cache), manifest=str(cohort), image_size=SIZE), RANK_1_OF_2)) == 4
    assert len(ensure_cache(DataSettings(cache=str(cache), image_size=SIZE), RANK_1_OF_2)) == 4
    with pytest.raises(CacheError, match=f"not the cache of {cohort} at these data.image_size.*--size 48 .*--overwrite"):
        ensure_cache(DataSettings(cache=str(cache), manifest=str(cohort), image_size=48), RANK_1_OF_2)
    assert stamps(cache) == before  # read and checked, never written
    part = tmp_path / "part"
    build_cache(cohort, part, PrepSettings(size=SIZE), part=(0, 2), progress=False)
    with pytest.raises(FileNotFoundError, match="no complete cache here"):
        ensure_cache(DataSettings(cache=str(part), manifest=str(cohort), image_size=SIZE), RANK_1_OF_2)


def test_crop_body_reaches_the_cache_and_a_cache_without_it_is_refused(cohort, tmp_path):  # noqa: F811
    from medvl.data.cache import read_meta

    cache = tmp_path / "c"
    ensure_cache(DataSettings(cache=str(cache), manifest=str(cohort), image_size=SIZE, crop_body=True), DistInfo())
    assert read_meta(cache)["settings"]["crop_body"] is True
    with pytest.raises(CacheError) as refused:
        ensure_cache(DataSettings(cache=str(cache), manifest=str(cohort), image_size=SIZE), DistInfo())
    message = str(refused.value)
    assert "cropped to the body" in message and "data.crop_body=true" in message
    assert message.endswith(f"'medvl cache {cohort} -o {cache} --size {SIZE} --ct-window lung --overwrite'")


@pytest.mark.distributed
def test_two_torchrun_processes_refuse_a_missing_cache_at_once(cohort, tmp_path):  # noqa: F811
    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--rdzv-backend", "c10d",
               "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "-m", "medvl", "pretrain", f"output_dir={tmp_path / 'runs'}",
               "run_name=r", f"data.cache={cache}", f"data.manifest={cohort}", f"data.image_size={SIZE}",
               "model.name=tiny-resnet18", "train.steps=2", "train.batch_size=2",
               f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=300)
    seconds = time.monotonic() - started
    assert done.returncode != 0
    refusals = [line for line in done.stderr.splitlines()
                if line.startswith(f"medvl pretrain: {cache}: no complete cache here, and a job of 2 processes")]
    # every rank refuses on its own (no barrier); torchrun may stop the second before it prints, once the first has failed
    assert 1 <= len(refusals) <= 2, done.stderr[-3000:]
    assert seconds < 60, f"the refusal took {seconds:.0f} s"
    assert not cache.exists()
