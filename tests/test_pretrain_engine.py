"""The pretraining engine's semantics: accumulation that enlarges the contrastive batch, FSDP2 against DDP,
sharded resume after SIGKILL, deterministic validation, rank-averaged logging, fp16 and compile."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from medvl.config import load_config
from medvl.data.pairs import collate_pairs
from medvl.infer.embed import embed_pairs
from medvl.train import distributed
from medvl.train.settings import PretrainConfig
from medvl.train.trainer import Trainer
from tests.pretrain_step_worker import first_step_gradients
from tests.servers import free_port
from tests.test_pretrain_runs import DETERMINISTIC, _command, _env, _losses

WORKER = Path(__file__).with_name("pretrain_step_worker.py")
# every loss term whose gradient depends on the batch: InfoNCE, learned-temperature CLIP, label-aware soft
# targets, and the patch-concept term (encoded concepts and logit parameters shared by all micro-batches)
ALL_TERMS = ("model.overrides.loss.weights.clip=0.5", "model.overrides.loss.weights.soft_target=0.5",
             "model.overrides.loss.weights.concept=0.5")  # fmt: skip


def _overrides(tmp: Path, cache: Path, *extra: str) -> list[str]:
    return [f"output_dir={tmp}", "run_name=r", f"data.cache={cache}", "data.image_size=64", "data.workers=0",
            "model.overrides.image.image_size=64", "train.log_every=1", "train.eval_every=0",
            f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}", "tracking.log_model=false", *DETERMINISTIC, *ALL_TERMS,
            *extra]  # fmt: skip


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--rdzv-backend", "c10d",
            "--rdzv-endpoint", f"127.0.0.1:{free_port()}", *args]  # fmt: skip


def _assert_same_step(got: dict, expected: dict) -> None:
    assert got["loss"] == pytest.approx(expected["loss"], abs=1e-5)
    assert sorted(got["grads"]) == sorted(expected["grads"])
    for name, grad in expected["grads"].items():
        torch.testing.assert_close(got["grads"][name], grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.fixture(scope="module")
def one_batch_of_32(tiny_cache, tmp_path_factory) -> dict:
    """Loss and gradients of one step on one batch of 32 (the reference)."""
    return first_step_gradients(_overrides(tmp_path_factory.mktemp("b32"), tiny_cache, "train.batch_size=32"))


def test_accumulation_of_4_x_8_equals_one_batch_of_32(one_batch_of_32, tiny_cache, tmp_path):
    accumulated = first_step_gradients(_overrides(tmp_path, tiny_cache, "train.batch_size=8", "train.grad_accum=4"))
    _assert_same_step(accumulated, one_batch_of_32)
    plain = first_step_gradients(_overrides(tmp_path / "p", tiny_cache, "train.batch_size=8"))
    assert plain["loss"] < one_batch_of_32["loss"] - 0.5  # 8 candidates, not 32: accumulation adds negatives


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_ranks_accumulating_2_x_8_equal_one_batch_of_32(one_batch_of_32, tiny_cache, tmp_path, strategy):
    out = tmp_path / "grads.pt"
    extra = ("train.batch_size=8", "train.grad_accum=2", f"train.strategy={strategy}", "train.local_loss=true")
    run = subprocess.run(_torchrun(str(WORKER), str(out), *_overrides(tmp_path, tiny_cache, *extra)),
                         env=_env(tmp_path), capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    _assert_same_step(torch.load(out), one_batch_of_32)  # local_loss: the logged loss is the mean over ranks


@pytest.mark.slow
def test_fsdp_follows_ddp_and_resumes_after_sigkill(tiny_cache, tmp_path):
    steps = 8
    env = _env(tmp_path)
    extra = ("data.augment=convirt", "data.text=sentence", *DETERMINISTIC, f"train.steps={steps}", "train.batch_size=4")

    def launch(name: str, strategy: str, *more: str) -> list[str]:
        return _torchrun(*_command(tmp_path / name, tiny_cache, *extra, f"train.strategy={strategy}", *more)[1:])

    ddp = subprocess.run(launch("ddp", "ddp"), env=env, capture_output=True, text=True)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    fsdp = subprocess.run(launch("fsdp", "fsdp"), env=env, capture_output=True, text=True)
    assert fsdp.returncode == 0, fsdp.stderr[-3000:]
    expected, got = _losses(tmp_path / "ddp" / "r"), _losses(tmp_path / "fsdp" / "r")
    assert sorted(got) == sorted(expected) == list(range(1, steps + 1))
    for step in range(1, 6):
        assert got[step] == pytest.approx(expected[step], abs=1e-4), step
    assert (tmp_path / "fsdp" / "r" / "last.dcp").is_dir() and (tmp_path / "fsdp" / "r" / "model" / "model.safetensors").is_file()

    killed = tmp_path / "killed" / "r"
    proc = subprocess.Popen(launch("killed", "fsdp"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (killed / "metrics.jsonl").is_file() and max(_losses(killed), default=0) >= 5:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks at once
    proc.wait()
    assert max(_losses(killed)) < steps and (killed / "last.dcp").is_dir()
    resumed = subprocess.run([*launch("killed", "fsdp"), "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = _losses(killed)
    for step in range(1, steps + 1):
        assert again[step] == pytest.approx(got[step], abs=1e-5), step


def test_validation_is_deterministic_with_dropout_in_the_model(tiny_cache, tmp_path):
    overrides = _overrides(tmp_path, tiny_cache, "train.batch_size=8")
    overrides = [o for o in overrides if o not in DETERMINISTIC]  # keep the text encoder's dropout
    trainer = Trainer.for_config(load_config(PretrainConfig, None, overrides), distributed.DistInfo())
    trainer.model.train()
    first, second = (embed_pairs(trainer.model, trainer.val_set, collate_pairs, trainer.device) for _ in range(2))
    assert torch.equal(first.image, second.image) and torch.equal(first.text, second.text)
    assert trainer.model.training, "embedding restores train mode"
    assert trainer.validate() == trainer.validate()


def test_the_concept_term_alone_trains_without_encoding_the_reports(tiny_cache, tmp_path):
    """Stage 2d of the volume recipe: the text tower learns through the concept names; the reports are not encoded."""
    alone = ("model.overrides.loss.weights.convirt=0", "model.overrides.loss.weights.clip=0",
             "model.overrides.loss.weights.soft_target=0", "data.concepts=findings", "train.batch_size=8")  # fmt: skip
    trainer = Trainer.for_config(load_config(PretrainConfig, None, _overrides(tmp_path, tiny_cache, *alone)), distributed.DistInfo())
    batches = trainer._batches()
    out = trainer._forward(next(batches))
    assert "text" not in out and "patches" in out
    text_before = [p.detach().clone() for p in trainer.model.text_encoder.parameters()]
    terms = trainer._optimizer_step(batches)
    assert set(terms) == {"loss", "loss_concept"} and math.isfinite(float(terms["loss"]))
    moved = [not torch.equal(a, b) for a, b in zip(text_before, trainer.model.text_encoder.parameters(), strict=True)]
    assert any(moved), "the text tower must still learn, through the concept names"


def test_fp16_with_a_gradient_scaler_trains(tiny_cache, tmp_path):
    fp16 = load_config(PretrainConfig, None, _overrides(tmp_path / "a", tiny_cache, "train.precision=fp16", "train.steps=2",
                                                        "train.batch_size=8"))  # fmt: skip
    trainer = Trainer.for_config(fp16, distributed.DistInfo())
    assert trainer.amp_dtype == torch.float16 and trainer.scaler is not None
    result = trainer.fit()
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2] and all(r["loss"] > 0 for r in rows if "loss" in r)


@pytest.mark.slow
def test_compiled_model_trains(tiny_cache, tmp_path):
    config = load_config(PretrainConfig, None, _overrides(tmp_path, tiny_cache, "train.compile=true", "train.steps=1",
                                                          "train.batch_size=8"))  # fmt: skip
    trainer = Trainer.for_config(config, distributed.DistInfo())
    assert trainer.engine is not trainer.model  # the step runs through torch.compile
    result = trainer.fit()
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 1 and math.isfinite(rows[0]["loss"]) and rows[0]["loss"] > 0
