"""Training infrastructure: sampling, checkpoints, schedules, rank handling, retrieval metrics."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from medvl.infer.retrieval import mean_rank, precision_at_k, recall_at_k, retrieval_metrics
from medvl.train.checkpoint import (
    discard_partial_writes,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from medvl.train.distributed import env_info, first_slurm_host
from medvl.train.sampling import ResumableSampler, repeat_factors, sample_seed
from medvl.train.schedule import cosine_with_warmup


def test_ranks_partition_an_epoch_and_resume_continues_it():
    n, world = 22, 2
    shards = [list(ResumableSampler(n, seed=3, rank=r, world_size=world, batch_size=5)) for r in range(world)]
    indices = [i for shard in shards for i, _ in shard]
    assert len(indices) == 20 and len(set(indices)) == 20  # 2 global batches of 10, tail dropped
    resumed = ResumableSampler(n, seed=3, rank=1, world_size=world, batch_size=5)
    resumed.set_epoch(0, start=4)
    assert list(resumed) == shards[1][4:]
    other_epoch = ResumableSampler(n, seed=3, batch_size=5)
    other_epoch.set_epoch(1)
    assert [i for i, _ in other_epoch] != [i for i, _ in ResumableSampler(n, seed=3, batch_size=5)]


def test_padding_without_drop_last_and_item_seeds():
    sampler = ResumableSampler(5, seed=0, rank=1, world_size=2, drop_last=False)
    assert len(sampler) == 3
    seeds = {seed for _, seed in sampler}
    assert all(0 <= s < 2**63 for s in seeds)
    assert sample_seed(1, 2, 3) == sample_seed(1, 2, 3) != sample_seed(1, 2, 4)
    with pytest.raises(ValueError, match="empty"):
        ResumableSampler(0)


def test_repeat_factors_follow_the_rarest_positive_finding():
    labels = np.zeros((100, 3))
    labels[:1, 0] = 1  # 1 % of items: repeated sqrt(0.04 / 0.01) = 2 times
    labels[:50, 1] = 1  # 50 %: common, no repeat
    labels[1:3, 2] = -1  # uncertain mentions do not count as positives
    factors = repeat_factors(labels, 0.04)
    assert factors[0] == pytest.approx(2.0)
    assert np.all(factors[1:] == 1.0)
    assert np.all(repeat_factors(labels, 0.001) == 1.0)  # nothing rarer than the threshold


def test_repeats_show_rare_items_more_often_with_their_own_seeds_and_resume():
    n = 40
    assert list(ResumableSampler(n, seed=5, batch_size=4, repeats=np.ones(n))) == list(
        ResumableSampler(n, seed=5, batch_size=4)
    )  # factors of 1 change nothing, so a recipe that sets a threshold its cohort never reaches keeps its runs
    repeats = np.ones(n)
    repeats[:2] = 3.0
    repeats[2] = 2.5
    sampler = ResumableSampler(n, seed=5, batch_size=4, drop_last=False, repeats=repeats)
    shown = list(sampler)
    counts = np.bincount([i for i, _ in shown], minlength=n)
    assert counts[0] == counts[1] == 3 and counts[2] in (2, 3) and np.all(counts[3:] == 1)
    assert len({seed for _, seed in shown}) == len(shown)  # every showing augmented and described anew
    resumed = ResumableSampler(n, seed=5, batch_size=4, drop_last=False, repeats=repeats)
    resumed.set_epoch(0, start=7)
    assert list(resumed) == shown[7:]
    ranks = [ResumableSampler(n, seed=5, rank=r, world_size=2, batch_size=4, repeats=repeats) for r in (0, 1)]
    assert sorted(p for rank in ranks for p in rank) == sorted(shown[: len(list(ranks[0])) * 2])
    half = 0
    for epoch in range(40):  # the fractional part is drawn per epoch
        sampler.set_epoch(epoch)
        half += sum(i == 2 for i, _ in sampler) == 3
    assert 8 <= half <= 32


def test_checkpoint_is_atomic_and_restores_rng(tmp_path):
    torch.manual_seed(0)
    state = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    path = save_checkpoint(tmp_path / "ck" / "last.pt", {"rng": state, "step": 7})
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]
    loaded = load_checkpoint(path)
    set_rng_state(loaded["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert loaded["step"] == 7
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_dead_writers_temporary_file_is_removed_by_the_next_save(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".last.pt.{int(dead.stdout)}.tmp"
    live = tmp_path / f".last.pt.{os.getppid()}.tmp"  # a writer that still runs keeps its file
    stale.write_bytes(b"half a checkpoint")
    live.write_bytes(b"being written")
    assert discard_partial_writes(tmp_path / "last.pt") == [stale]
    stale.write_bytes(b"half a checkpoint")
    save_checkpoint(tmp_path / "last.pt", {"step": 1})
    assert not stale.exists() and live.exists()
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 1


def test_cosine_warmup_schedule():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = cosine_with_warmup(opt, total_steps=10, warmup_steps=2)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0)
    assert lrs[2] == pytest.approx(1.0) and lrs[-1] < 0.05
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:], strict=False))


def test_env_info_from_torchrun_and_slurm():
    assert env_info({}).world_size == 1
    info = env_info({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"})
    assert (info.rank, info.world_size, info.local_rank, info.is_main) == (3, 8, 1, False)
    slurm = env_info({"SLURM_PROCID": "5", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1"})
    assert (slurm.rank, slurm.world_size, slurm.local_rank) == (5, 16, 1)
    assert first_slurm_host("gpu[03-05,07],cpu1") == "gpu03"
    assert first_slurm_host("node17") == "node17"


def test_recall_at_k_by_hand():
    img = torch.eye(3)
    txt = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])  # items 1 and 2 swapped
    r = recall_at_k(img, txt, ks=(1, 2))
    assert r == {1: pytest.approx(1 / 3), 2: pytest.approx(1.0)}
    m = retrieval_metrics(img, img, ks=(1,))
    assert m["i2t_R1"] == 1.0 and m["t2i_R1"] == 1.0
    with pytest.raises(ValueError, match="paired"):
        recall_at_k(torch.zeros(2, 3), torch.zeros(3, 3))
    assert mean_rank(img, txt) == pytest.approx((1 + 2 + 2) / 3)  # item 0 first, items 1 and 2 second
    assert mean_rank(img, img) == 1.0


def test_precision_at_k_by_hand():
    sims = np.array([[0.9, 0.8, 0.1], [0.1, 0.2, 0.9]])
    assert precision_at_k(np.array([0, 1]), np.array([0, 1, 1]), sims, k=2) == pytest.approx((0.5 + 1.0) / 2)
