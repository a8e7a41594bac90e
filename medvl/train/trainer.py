"""The contrastive pretraining loop, top to bottom: data, model, optimizer, steps, validation, checkpoints.

One process or many (``torchrun``, SLURM): rank 0 alone logs, validates and writes checkpoints. A run lives
in ``<output_dir>/<run_name>/``: ``config.yaml`` (resolved settings), ``last.pt`` (checkpoint), ``metrics.jsonl``
(every logged step), ``model/`` (final weights as safetensors + config + tokenizer), ``best/`` (best validation
model when validation ran). ``resume=True`` continues from ``last.pt`` on the same loss curve.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from medvl.config import config_hash, flatten, save_config, to_dict
from medvl.data.cache import CachedCohort
from medvl.infer.embed import embed_pairs, image_inputs
from medvl.infer.retrieval import retrieval_metrics
from medvl.losses import ContrastiveLoss
from medvl.provenance import code_version, environment
from medvl.tracking import RunTracker
from medvl.train import distributed
from medvl.train.checkpoint import (
    LAST,
    TrainState,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from medvl.train.concepts import ConceptVocabulary
from medvl.train.model_setup import build_training_model, ensure_cache
from medvl.train.pairs import (
    PairDataset,
    augment_images,
    augment_strength,
    cached_report_text,
    collate_pairs,
    label_reports,
    select_items,
)
from medvl.train.sampling import ResumableSampler
from medvl.train.schedule import cosine_with_warmup, plateau
from medvl.train.settings import PretrainConfig

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.jsonl"


@dataclass
class PretrainResult:
    """What a finished run produced."""

    run_dir: Path
    model_dir: Path | None
    steps: int
    val_metrics: dict[str, float]
    mlflow_run_id: str | None
    stopped_early: bool


def autocast_for(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (``auto`` or ``bf16``), fp32 on the CPU unless ``bf16`` is asked for."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Trainer:
    """One pretraining run (see the module docstring)."""

    def __init__(self, config: PretrainConfig, info: distributed.DistInfo, resume: bool = False) -> None:
        self.cfg = config
        self.info = info
        self.device = distributed.device_for(info)
        self.run_dir = Path(config.output_dir) / config.run_name
        torch.manual_seed(config.train.seed)
        np.random.seed(config.train.seed % 2**32)
        if info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, self.run_dir / "config.yaml")
        self.cohort: CachedCohort = ensure_cache(config.data, info)
        self.model = build_training_model(config, self.cohort, self.run_dir, info).to(self.device)
        self.kinds = self._kinds()
        self._build_data()
        self.loss_fn = ContrastiveLoss(
            self.model.config["loss"], local_loss=config.train.local_loss, gather_with_grad=config.train.gather_with_grad
        )
        self.concepts = self._concept_vocabulary()
        self.optimizer = self._optimizer()
        self.scheduler = self._scheduler()
        self.state = TrainState()
        if resume:
            self._restore()
        self.engine = self._wrap(self.model)
        self.tracker = RunTracker(
            self.run_dir, config.tracking.experiment, config.run_name, config.tracking.uri or None,
            enabled=info.is_main, run_id=self.state.mlflow_run_id,
        )  # fmt: skip

    # ----------------------------------------------------------------------------------------- set-up
    def _kinds(self) -> str:
        kinds = self.cfg.data.kinds
        pools = self.model.slice_pooling is not None and self.model.config["schedule"]["stage"] == "volume"
        if kinds == "auto":
            return "all" if pools else "2d"
        if kinds in ("3d", "all") and not pools:
            raise ValueError(
                f"data.kinds={kinds} needs a model with slice pooling in stage 'volume'; model "
                f"'{self.model.config['name']}' has {'no slice_pooling' if self.model.slice_pooling is None else 'stage 2d'}"
            )
        return kinds

    def _build_data(self) -> None:
        d = self.cfg.data
        train_idx = select_items(self.cohort, d.train_split, self.kinds)
        val_idx = select_items(self.cohort, d.val_split, self.kinds)
        if len(train_idx) < self.cfg.train.batch_size * self.info.world_size:
            raise ValueError(
                f"{self.cohort.cache_dir}: split '{d.train_split}' has {len(train_idx)} {self.kinds} items, fewer than "
                f"one global batch ({self.cfg.train.batch_size} x {self.info.world_size} ranks); lower train.batch_size"
            )
        self.augment = augment_strength(d.augment)
        labels = label_reports(self.cohort, train_idx) if d.labels == "reports" else None
        self.train_set = PairDataset(self.cohort, train_idx, d.text, d.max_slices, labels)
        self.val_set = PairDataset(self.cohort, val_idx, "report", d.max_slices) if len(val_idx) >= 2 else None
        self.sampler = ResumableSampler(
            len(train_idx), self.cfg.train.seed, self.info.rank, self.info.world_size,
            shuffle=True, drop_last=True, batch_size=self.cfg.train.batch_size,
        )  # fmt: skip

    def _concept_vocabulary(self) -> ConceptVocabulary | None:
        if self.model.config["loss"]["weights"].get("concept", 0) <= 0:
            return None
        reports = [cached_report_text(self.cohort, i) for i in self.train_set.indices[:2000]]
        return ConceptVocabulary.from_reports(reports)

    def _optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        groups = self.model.parameter_groups(o.lr)
        cls = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
        return cls(groups, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)

    def _scheduler(self) -> Any:
        o = self.cfg.optim
        if o.schedule == "cosine":
            return cosine_with_warmup(self.optimizer, self.cfg.train.steps, o.warmup_steps, o.min_lr_ratio)
        if o.schedule == "plateau":
            return plateau(self.optimizer)
        return None

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        t = self.cfg.train
        engine: torch.nn.Module = model
        if self.info.distributed:
            if t.strategy == "fsdp":
                from torch.distributed.fsdp import fully_shard

                for module in (model.image_encoder, model.text_encoder):
                    fully_shard(module)
                engine = fully_shard(model)
            else:
                if t.sync_batchnorm and self.device.type == "cuda":
                    engine = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
                device_ids = [self.device.index] if self.device.type == "cuda" else None
                engine = torch.nn.parallel.DistributedDataParallel(engine, device_ids=device_ids)
        if t.compile:
            engine = torch.compile(engine)
        return engine

    # ----------------------------------------------------------------------------------------- checkpoints
    def _restore(self) -> None:
        path = self.run_dir / LAST
        ckpt = load_checkpoint(path)
        if ckpt["config_hash"] != config_hash(self.cfg):
            log.warning("%s was written with other settings; continuing with the settings given now", path)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.state = TrainState(**ckpt["state"])
        set_rng_state(ckpt["rng"][min(self.info.rank, len(ckpt["rng"]) - 1)])
        if self.info.is_main:
            log.info("resumed %s at step %d (epoch %d, item %d)", path, self.state.step, self.state.epoch, self.state.items_in_epoch)

    def _checkpoint(self) -> None:
        rngs = [rng_state()]
        if self.info.distributed:
            gathered: list[Any] = [None] * self.info.world_size
            torch.distributed.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if not self.info.is_main:
            return
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": rngs,
            "state": self.state.__dict__,
            "config": to_dict(self.cfg),
            "config_hash": config_hash(self.cfg),
        }
        save_checkpoint(self.run_dir / LAST, payload)

    # ----------------------------------------------------------------------------------------- loop
    def _batches(self) -> Iterator[dict[str, Any]]:
        """Endless training batches; ``state.epoch`` / ``state.items_in_epoch`` count what was consumed."""
        while True:
            self.sampler.set_epoch(self.state.epoch, self.state.items_in_epoch)
            loader = DataLoader(
                self.train_set, batch_size=self.cfg.train.batch_size, sampler=self.sampler,
                collate_fn=collate_pairs, num_workers=self.cfg.data.workers, drop_last=True,
                generator=torch.Generator().manual_seed(self.cfg.train.seed + self.state.epoch),
            )  # fmt: skip
            for batch in loader:
                self.state.items_in_epoch += self.cfg.train.batch_size
                yield batch
            self.state.epoch += 1
            self.state.items_in_epoch = 0

    def _micro_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        tokens = self.model.tokenize(batch["text"])
        if self.augment is not None:
            batch = {**batch, "image": augment_images(batch, self.augment, self.device)}
        inputs = image_inputs(self.model, batch, self.device)
        with autocast_for(self.cfg.train.precision, self.device):
            out = self.engine(
                **inputs, input_ids=tokens["input_ids"].to(self.device),
                attention_mask=tokens["attention_mask"].to(self.device), return_patches=self.concepts is not None,
            )  # fmt: skip
            concept_emb = concept_targets = None
            if self.concepts is not None:
                names = self.model.tokenize(self.concepts.names)
                concept_emb = self.model.encode_text(names["input_ids"].to(self.device), names["attention_mask"].to(self.device))
                concept_targets = self.concepts.targets(batch["text"]).to(self.device)
            loss = self.loss_fn(out, labels=batch["labels"].to(self.device), concept_emb=concept_emb, concept_targets=concept_targets)
        return loss.total, loss.terms

    def _optimizer_step(self, batches: Iterator[dict[str, Any]]) -> dict[str, float]:
        t = self.cfg.train
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        n_images = 0
        for micro in range(t.grad_accum):
            batch = next(batches)
            n_images += len(batch["text"])
            sync = micro == t.grad_accum - 1 or not isinstance(self.engine, torch.nn.parallel.DistributedDataParallel)
            with contextlib.nullcontext() if sync else self.engine.no_sync():
                total, terms = self._micro_step(batch)
                (total / t.grad_accum).backward()
            totals["loss"] = totals.get("loss", 0.0) + float(total.detach()) / t.grad_accum
            for name, value in terms.items():
                totals[f"loss_{name}"] = totals.get(f"loss_{name}", 0.0) + float(value) / t.grad_accum
        if not math.isfinite(totals["loss"]):
            raise FloatingPointError(f"loss became {totals['loss']} at step {self.state.step}; lower optim.lr or check the data")
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None and self.cfg.optim.schedule == "cosine":
            self.scheduler.step()
        self.model.clamp_logit_scale_()
        totals["lr"] = self.optimizer.param_groups[-1]["lr"]
        totals["images"] = n_images
        return totals

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Retrieval R@1/5/10 in both directions on the validation split (rank 0)."""
        if self.val_set is None:
            return {}
        emb = embed_pairs(self.model, self.val_set, collate_pairs, self.device, batch_size=self.cfg.train.batch_size)
        return {f"val_{k}": v for k, v in retrieval_metrics(emb.image, emb.text).items()}

    def _log(self, metrics: dict[str, float]) -> None:
        if not self.info.is_main:
            return
        self.tracker.log_metrics(metrics, step=self.state.step)
        with (self.run_dir / METRICS_FILE).open("a") as fh:
            fh.write(json.dumps({"step": self.state.step, **metrics}) + "\n")

    def _evaluate_and_maybe_stop(self) -> bool:
        """Validate on rank 0, keep the best model, update plateau/early stopping; True to stop."""
        stop = torch.zeros(1)
        if self.info.is_main:
            metrics = self.validate()
            if metrics:
                self._log(metrics)
                value = metrics.get(self.cfg.train.early_stop_metric, float("nan"))
                if value > self.state.best_metric:
                    self.state.best_metric, self.state.bad_evals = value, 0
                    self.model.save_pretrained(self.run_dir / "best")
                else:
                    self.state.bad_evals += 1
                if self.cfg.optim.schedule == "plateau":
                    self.scheduler.step(value)
                patience = self.cfg.train.early_stop_patience
                stop[0] = float(patience > 0 and self.state.bad_evals >= patience)
        if self.info.distributed:
            torch.distributed.broadcast(stop, src=0)
        return bool(stop.item())

    def _start_tracking(self) -> None:
        if not self.info.is_main:
            return
        meta = {
            "medvl.kind": "pretrain",
            "medvl.code_version": code_version(),
            "medvl.cache_key": self.cohort.key,
            "medvl.manifest_hash": self.cohort.manifest_hash,
            "medvl.model": self.model.config["name"],
            "medvl.split_hashes": json.dumps(self.cohort.split_hashes(), sort_keys=True),
            "medvl.environment": json.dumps(environment(), sort_keys=True),
        }
        run_id = self.tracker.start(tags=meta)
        if self.state.step == 0:
            params = flatten(to_dict(self.cfg))
            params.update({f"env.{k}": v for k, v in environment().items()})
            params.update({"world_size": self.info.world_size, "kinds": self.kinds, "train_items": len(self.train_set)})
            self.tracker.log_params(params)
            self.tracker.log_artifact(self.run_dir / "config.yaml")
        self.state.mlflow_run_id = run_id

    def fit(self) -> PretrainResult:
        """Train to ``train.steps`` (or early stop), then export the model; returns what was produced."""
        t = self.cfg.train
        self._start_tracking()
        batches = self._batches()
        bar = tqdm(total=t.steps, initial=self.state.step, desc="pretrain", disable=not self.info.is_main, unit="step")
        stopped_early = False
        window_start, window_images = time.perf_counter(), 0
        try:
            while self.state.step < t.steps:
                metrics = self._optimizer_step(batches)
                self.state.step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}")
                window_images += metrics.pop("images") * self.info.world_size
                if self.state.step % t.log_every == 0 or self.state.step == t.steps:
                    elapsed = time.perf_counter() - window_start
                    metrics["images_per_s"] = window_images / max(elapsed, 1e-9)
                    self._log(metrics)
                    window_start, window_images = time.perf_counter(), 0
                last = self.state.step == t.steps
                if (t.eval_every and self.state.step % t.eval_every == 0) or last:
                    stopped_early = self._evaluate_and_maybe_stop() and not last
                if self.state.step % t.checkpoint_every == 0 or last or stopped_early:
                    self._checkpoint()
                if stopped_early:
                    break
        except BaseException:
            self.tracker.end("FAILED")
            raise
        finally:
            bar.close()
        return self._finish(stopped_early)

    def _finish(self, stopped_early: bool) -> PretrainResult:
        distributed.barrier()
        model_dir = val = None
        if self.info.is_main:
            from medvl.train.export import export_run

            model_dir, val = export_run(self)
        self.tracker.end("FINISHED")
        return PretrainResult(self.run_dir, model_dir, self.state.step, val or {}, self.state.mlflow_run_id, stopped_early)


def run_pretrain(config: PretrainConfig, resume: bool = False) -> PretrainResult:
    """Join the process group if launched distributed, train, and leave it again."""
    info = distributed.setup()
    try:
        return Trainer(config, info, resume=resume).fit()
    finally:
        distributed.cleanup()
