"""The contrastive pretraining loop, top to bottom: data, model, optimizer, steps, validation, checkpoints.

One process or many (``torchrun``, SLURM): rank 0 alone logs and writes files. With DDP rank 0 alone
validates; with FSDP (sharded towers) every rank takes part in validation and export. A run lives in
``<output_dir>/<run_name>/``: ``config.yaml`` (resolved settings), ``last.pt`` (checkpoint; ``last.dcp/``
sharded under FSDP), ``metrics.jsonl`` (every logged step), ``model/`` (final weights as safetensors + config
+ tokenizer), ``best/`` (best validation model when validation ran). ``resume=True`` continues on the same
loss curve.

The host does little per step: background workers read uint8 batches and pre-computed token ids
(:class:`medvl.train.batches.PairBatches`); conversion and augmentation happen on the device; losses stay on
the device and reach the host only at log steps.
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
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader
from tqdm.auto import tqdm

from medvl.config import ConfigError, config_hash, flatten, to_dict
from medvl.data.pairs import PairDataset, cached_report_text, collate_pairs, label_reports
from medvl.distributed_gather import scale_gradient
from medvl.infer.embed import embed_pairs, uses_slices
from medvl.infer.retrieval import retrieval_metrics
from medvl.interrupts import interruptible_worker
from medvl.losses import ContrastiveLoss
from medvl.models.vlm import LOGIT_PARAMETERS
from medvl.provenance import code_version, environment
from medvl.text.concepts import ConceptVocabulary
from medvl.text.labeller import Labeller
from medvl.text.labels import LabelSpace
from medvl.tracking import RunTracker
from medvl.train import distributed, fsdp, hardware
from medvl.train.batches import PairBatches, augment_strength, device_inputs
from medvl.train.checkpoint import (
    LAST,
    TrainState,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from medvl.train.model_setup import PreparedRun, prepare_run
from medvl.train.sampling import ResumableSampler, repeat_factors
from medvl.train.schedule import cosine_with_warmup, plateau
from medvl.train.settings import PretrainConfig
from medvl.train.text_ids import PolarityBank, TokenBank, bank_key, token_bank

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.jsonl"
SHARDED_LAST = "last.dcp"
FEATURES = ("image", "text", "patches")


@dataclass
class PretrainResult:
    """What a finished run produced."""

    run_dir: Path
    model_dir: Path | None
    steps: int
    val_metrics: dict[str, float]
    mlflow_run_id: str | None
    stopped_early: bool


def _rng_snapshot(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _rng_restore(snapshot: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(snapshot[0])
    if snapshot[1] is not None:
        torch.cuda.set_rng_state(snapshot[1], device)


class Trainer:
    """One pretraining run (see the module docstring)."""

    def __init__(self, config: PretrainConfig, info: distributed.DistInfo, run: PreparedRun, resume: bool = False) -> None:
        self.cfg = config
        self.info = info
        self.device = distributed.device_for(info, config.train.device)
        hardware.enable_fast_math(self.device)
        self.amp_dtype = hardware.autocast_dtype(config.train.precision, self.device)
        self.scaler = hardware.grad_scaler(self.amp_dtype, self.device)
        self.sharded = info.distributed and config.train.strategy == "fsdp"
        if self.sharded and self.scaler is not None:
            raise ConfigError("train.strategy=fsdp with fp16 is not supported (its gradient scaler cannot unscale sharded "
                             "and replicated gradients together); use train.precision=bf16 or train.strategy=ddp")
        self.run_dir, self.cohort = run.run_dir, run.cohort
        self.model = run.model.to(self.device)
        self.channels_last = self.device.type == "cuda" and getattr(self.model.image_encoder, "channels_last", False)
        if self.channels_last:
            self.model.image_encoder.to(memory_format=torch.channels_last)
        self.kinds = self._kinds()
        self.volumes = uses_slices(self.model)
        self.train_idx = self.cohort.select(config.data.train_split, self.kinds)
        self.concepts = self._concept_vocabulary()
        self._build_data()
        self.loss_fn = ContrastiveLoss(
            self.model.config["loss"], local_loss=config.train.local_loss, gather_with_grad=config.train.gather_with_grad
        )
        self.replicated: list[torch.nn.Parameter] = []
        self.engine = self._wrap(self.model)
        self.optimizer = self._optimizer()
        self.scheduler = self._scheduler()
        self.state = TrainState()
        if resume:
            self._restore()
        self.tracker = RunTracker(
            self.run_dir, config.tracking.experiment, config.run_name, config.tracking.uri or None,
            enabled=info.is_main, run_id=self.state.mlflow_run_id,
        )  # fmt: skip

    @classmethod
    def for_config(cls, config: PretrainConfig, info: distributed.DistInfo, resume: bool = False) -> Trainer:
        """Prepare the run (folder, training cache, tokenizer, model: :func:`prepare_run`), then its trainer."""
        return cls(config, info, prepare_run(config, info), resume=resume)

    # ----------------------------------------------------------------------------------------- set-up
    def _kinds(self) -> str:
        kinds = self.cfg.data.kinds
        if kinds == "auto":  # a 3D encoder trains on volumes; a slice adapter on volumes and 2D images
            return "3d" if self.model.volume_encoder is not None else "all" if self.model.pools_slices else "2d"
        if kinds in ("3d", "all") and not self.model.encodes_volumes:
            raise ConfigError(
                f"data.kinds={kinds} needs a model that encodes volumes (a slice_pooling or volume_encoder section); "
                f"model '{self.model.config['name']}' has neither"
            )
        return kinds

    def _concept_vocabulary(self) -> ConceptVocabulary | None:
        if self.model.config["loss"]["weights"].get("concept", 0) <= 0:
            return None
        reports = [cached_report_text(self.cohort, i) for i in self.train_idx[:2000]]
        return ConceptVocabulary.from_reports(reports, categories=["finding"] if self.cfg.data.concepts == "findings" else None,
                                              labeller=Labeller(LabelSpace.chest_abdomen_ct()))

    def _build_data(self) -> None:
        d, t = self.cfg.data, self.cfg.train
        train_idx, val_idx = self.train_idx, self.cohort.select(d.val_split, self.kinds)
        if len(train_idx) < t.batch_size * self.info.world_size:
            raise ConfigError(
                f"{self.cohort.cache_dir}: split '{d.train_split}' has {len(train_idx)} {self.kinds} items, fewer than "
                f"one global batch ({t.batch_size} x {self.info.world_size} ranks); lower train.batch_size"
            )
        if d.key_images and (self.concepts is None or self.cohort.settings.get("slice_mm")):
            raise ConfigError("data.key_images needs the concept term (model.overrides.loss.weights.concept > 0) and a "
                              f"cache whose slices were not resampled ({self.cohort.cache_dir} has slice_mm "
                              f"{self.cohort.settings.get('slice_mm')})")
        labels = label_reports(self.cohort, train_idx) if d.labels == "reports" else None
        train_labels = self.cohort.item_labels(train_idx) if labels is None else labels
        self.train_set = PairBatches(
            self.cohort, train_idx, self._token_bank(train_idx, labels), d.max_slices, train_labels,
            augment_strength(d.augment), self.concepts, self._polarity_bank(train_labels), d.slice_draw, d.key_images,
        )  # fmt: skip
        self.val_set = PairDataset(self.cohort, val_idx, d.max_slices) if len(val_idx) >= 2 else None
        self.sampler = ResumableSampler(
            len(train_idx), t.seed, self.info.rank, self.info.world_size, shuffle=True, drop_last=True,
            batch_size=t.batch_size, repeats=self._repeats(train_labels),
        )  # fmt: skip
        workers = hardware.loader_workers(d.workers, distributed.local_world_size())
        self.loader = DataLoader(
            self.train_set, batch_size=None, sampler=BatchSampler(self.sampler, t.batch_size, drop_last=True),
            num_workers=workers, pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
            prefetch_factor=d.prefetch if workers > 0 else None, worker_init_fn=interruptible_worker,
            generator=torch.Generator().manual_seed(t.seed),  # its own: starting an epoch leaves dropout's RNG alone
        )  # fmt: skip
        names = self.model.tokenize(self.concepts.names) if self.concepts is not None else {}
        self.concept_tokens = {k: v.to(self.device) for k, v in names.items()}

    def _repeats(self, labels: np.ndarray) -> np.ndarray | None:
        """Per-item repeat factors of ``data.repeat_threshold`` (None when it is off)."""
        threshold = self.cfg.data.repeat_threshold
        if not 0 <= threshold < 1:
            raise ConfigError(f"data.repeat_threshold must be in [0, 1) (a training frequency), got {threshold}")
        return repeat_factors(labels, threshold) if threshold > 0 else None

    def _token_bank(self, indices: np.ndarray, labels: np.ndarray | None) -> TokenBank:
        """Token ids of the training texts (with ``data.label_prompts`` label prompts per item, written from
        ``labels``), tokenised once per run (rank 0 writes them, the others read)."""
        text, d = self.model.text_encoder, self.cfg.data
        args = (self.cohort, indices, d.text, text.tokenizer, text.max_length, d.label_prompts, labels)
        path = self.run_dir / f"text-ids-{bank_key(*args)}.npz"
        if self.info.is_main and not path.is_file():
            token_bank(*args).save(path)
        distributed.barrier()
        return TokenBank.load(path)

    def _polarity_bank(self, labels: np.ndarray) -> PolarityBank | None:
        """The statement pairs of the polarity loss term for the findings the training ``labels`` have, when the
        model's loss weighs it."""
        if not self.model.config["loss"]["weights"].get("polarity"):
            return None
        text = self.model.text_encoder
        return PolarityBank.build(self.cohort.label_space, text.tokenizer, text.max_length, labels)

    def _polarity(self, micro: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Each item's statement and negation embeddings ``(B, F, D)`` of every finding, and its targets
        ``(B, F)`` (polarity term; each micro-batch drew its own pair per finding)."""
        if "polarity_ids" not in micro[0]:
            return None
        width = max(m["polarity_ids"].shape[1] for m in micro)
        pad = self.model.text_encoder.tokenizer.pad_token_id
        ids = torch.cat([F.pad(m["polarity_ids"], (0, width - m["polarity_ids"].shape[1]), value=pad) for m in micro])
        mask = torch.cat([F.pad(m["polarity_mask"], (0, width - m["polarity_mask"].shape[1])) for m in micro])
        emb = self.model.encode_text(ids.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True))
        findings = micro[0]["polarity_targets"].shape[1]
        sizes = torch.tensor([len(m["polarity_targets"]) for m in micro], device=emb.device)
        per_item = emb.view(len(micro), 2, findings, -1).repeat_interleave(sizes, dim=0)
        targets = torch.cat([m["polarity_targets"] for m in micro]).to(self.device, non_blocking=True)
        return per_item[:, 0], per_item[:, 1], targets

    def _optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        groups = self.model.parameter_groups(o.lr, o.weight_decay, image_lr=o.image_lr, text_lr=o.text_lr)
        cls = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
        fused = self.device.type == "cuda"
        return cls(groups, lr=o.lr, betas=o.betas, fused=fused)

    def _scheduler(self) -> Any:
        o = self.cfg.optim
        if o.schedule == "cosine":
            return cosine_with_warmup(self.optimizer, self.cfg.train.steps, o.warmup_steps, o.min_lr_ratio)
        if o.schedule == "plateau":
            return plateau(self.optimizer)
        return None

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """DDP, or FSDP2 sharding the towers in place (then the optimizer must be built after this)."""
        t = self.cfg.train
        engine: torch.nn.Module = model
        if self.sharded:
            self.replicated = fsdp.shard_towers(model)
        elif self.info.distributed:
            if t.sync_batchnorm and self.device.type == "cuda":
                engine = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            engine = torch.nn.parallel.DistributedDataParallel(engine, device_ids=device_ids)
        if t.compile:
            engine = torch.compile(engine)
        return engine

    # ----------------------------------------------------------------------------------------- checkpoints
    def _extra_state(self) -> dict[str, Any]:
        """Everything but the weights and optimizer moments; RNG states of every rank (collective)."""
        rngs = [rng_state()]
        if self.info.distributed:
            gathered: list[Any] = [None] * self.info.world_size
            torch.distributed.all_gather_object(gathered, rngs[0])
            rngs = gathered
        return {
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rngs,
            "state": self.state.__dict__,
            "config": to_dict(self.cfg),
            "config_hash": config_hash(self.cfg),
        }

    def _restore(self) -> None:
        if self.sharded:
            path = self.run_dir / SHARDED_LAST
            ckpt = fsdp.load_sharded(path, self.model, self.optimizer)
        else:
            path = self.run_dir / LAST
            ckpt = load_checkpoint(path)
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt["config_hash"] != config_hash(self.cfg):
            log.warning("%s was written with other settings; continuing with the settings given now", path)
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler") is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.state = TrainState(**ckpt["state"])
        set_rng_state(ckpt["rng"][min(self.info.rank, len(ckpt["rng"]) - 1)])
        if self.info.is_main:
            log.info("resumed %s at step %d (epoch %d, item %d)", path, self.state.step, self.state.epoch, self.state.items_in_epoch)

    def _checkpoint(self) -> None:
        extra = self._extra_state()
        if self.sharded:
            fsdp.save_sharded(self.run_dir / SHARDED_LAST, self.model, self.optimizer, extra)
        elif self.info.is_main:
            save_checkpoint(self.run_dir / LAST, {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), **extra})

    def save_model(self, directory: Path) -> None:
        """Write the whole model with ``save_pretrained`` on rank 0 (collective under FSDP: weights are gathered)."""
        weights = fsdp.full_state_dict(self.model) if self.sharded else None
        if self.info.is_main:
            self.model.save_pretrained(directory, state_dict=weights)

    # ----------------------------------------------------------------------------------------- loop
    def _batches(self) -> Iterator[dict[str, Any]]:
        """Endless training batches; ``state.epoch`` / ``state.items_in_epoch`` count what was consumed."""
        while True:
            self.sampler.set_epoch(self.state.epoch, self.state.items_in_epoch)
            for batch in self.loader:
                self.state.items_in_epoch += self.cfg.train.batch_size
                yield batch
            self.state.epoch += 1
            self.state.items_in_epoch = 0

    def _forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The model's embeddings of one micro-batch (images converted and augmented on the device); the reports
        are encoded only when a loss term compares images with them (not for the concept term alone)."""
        inputs = device_inputs(batch, self.device, self.volumes, self.channels_last)
        if self.loss_fn.needs_text:
            inputs["input_ids"] = batch["input_ids"].to(self.device, non_blocking=True)
            inputs["attention_mask"] = batch["attention_mask"].to(self.device, non_blocking=True)
        with hardware.autocast(self.amp_dtype, self.device):
            return self.engine(**inputs, return_patches=self.concepts is not None)

    def _loss(self, out: dict[str, Any], micro: list[dict[str, Any]], shared_scale: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of the accumulated batch; parameters used by the loss itself count ``shared_scale`` times."""
        if shared_scale != 1.0:  # they see every micro-step's backward: their gradient must count once in all
            out = {k: scale_gradient(v, shared_scale) if k in LOGIT_PARAMETERS and v is not None else v for k, v in out.items()}
        labels = torch.cat([m["labels"] for m in micro]).to(self.device, non_blocking=True)
        concept_emb = concept_targets = key_slices = None
        with hardware.autocast(self.amp_dtype, self.device):
            if self.concepts is not None:
                concept_emb = self.model.encode_text(self.concept_tokens["input_ids"], self.concept_tokens["attention_mask"])
                concept_emb = scale_gradient(concept_emb, shared_scale) if shared_scale != 1.0 else concept_emb
                concept_targets = torch.cat([m["concept_targets"] for m in micro]).to(self.device, non_blocking=True)
                if "key_slices" in micro[0]:
                    key_slices = torch.cat([m["key_slices"] for m in micro]).to(self.device, non_blocking=True)
            polarity = self._polarity(micro)
            if polarity is not None and shared_scale != 1.0:
                polarity = (scale_gradient(polarity[0], shared_scale), scale_gradient(polarity[1], shared_scale), polarity[2])
            loss = self.loss_fn(out, labels=labels, concept_emb=concept_emb, concept_targets=concept_targets,
                                polarity=polarity, key_slices=key_slices)  # fmt: skip
        return loss.total, loss.terms

    def _backward(self, total: torch.Tensor) -> None:
        (self.scaler.scale(total) if self.scaler is not None else total).backward()

    def _accumulated_backward(self, micro: list[dict[str, Any]]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """open_clip's ``accum_freq``: features of every micro-batch without gradients, then each micro-batch
        again with gradients against the cached others; each micro-batch replays its own random state, so dropout
        draws match between the two passes. Gradients equal those of one batch of all of them for models without
        batch statistics; batch-norm sees micro-batches (and updates its running statistics in both passes), so
        use group or layer norm where exactness matters."""
        cached, states = [], []
        with torch.no_grad():
            for batch in micro:
                states.append(_rng_snapshot(self.device))
                out = self._forward(batch)
                cached.append({k: out[k] for k in FEATURES if k in out})
        k = len(micro)
        for j, batch in enumerate(micro):
            _rng_restore(states[j], self.device)
            last = j == k - 1
            ddp = getattr(self.engine, "_orig_mod", self.engine)  # under torch.compile, the module it wraps
            no_sync = not last and isinstance(ddp, torch.nn.parallel.DistributedDataParallel)
            with ddp.no_sync() if no_sync else contextlib.nullcontext():
                out = self._forward(batch)
                for key in (f for f in FEATURES if f in out):
                    out[key] = torch.cat([c[key] for c in cached[:j]] + [out[key]] + [c[key] for c in cached[j + 1 :]])
                total, terms = self._loss(out, micro, 1.0 / k)
                self._backward(total)
        return total.detach(), terms

    def compute_gradients(self, micro: list[dict[str, Any]]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Fill every parameter's ``.grad`` for one optimizer step over the micro-batches; return the losses."""
        self.optimizer.zero_grad(set_to_none=True)
        if len(micro) == 1:
            total, terms = self._loss(self._forward(micro[0]), micro, 1.0)
            self._backward(total)
            total = total.detach()
        else:
            total, terms = self._accumulated_backward(micro)
        if self.replicated:
            fsdp.average_gradients(self.replicated)
        return total, terms

    def _optimizer_step(self, batches: Iterator[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """One optimizer step over ``train.grad_accum`` micro-batches; the losses stay on the device."""
        total, terms = self.compute_gradients([next(batches) for _ in range(self.cfg.train.grad_accum)])
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.cfg.optim.grad_clip > 0:
            params = [p for p in self.model.parameters() if p.grad is not None]
            if self.sharded:
                fsdp.clip_gradients(params, self.cfg.optim.grad_clip)
            else:
                torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.model.clamp_logit_scale_()
        return {"loss": total, **{f"loss_{name}": value for name, value in terms.items()}}

    def _reduce(self, sums: dict[str, torch.Tensor], steps: int) -> dict[str, float]:
        """Mean over the logged window's steps and over ranks (a rank's ``local_loss`` is its share); one sync."""
        names = sorted(sums)
        values = torch.stack([sums[n].float() for n in names]) / steps
        values = distributed.all_reduce_mean(values)
        out = dict(zip(names, values.tolist(), strict=True))
        if not math.isfinite(out["loss"]):
            raise FloatingPointError(f"loss became {out['loss']} by step {self.state.step}; lower optim.lr or check the data")
        return out

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Retrieval R@1/5/10 in both directions on the validation split, in eval mode."""
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

    def _evaluate_and_maybe_stop(self) -> tuple[bool, float | None]:
        """Validate (rank 0, or every rank under FSDP), keep the best model, decide early stopping on every rank
        alike; returns (stop, the validation metric or None)."""
        decision = torch.tensor([float("nan"), 0.0, 0.0], device=self.device)  # metric, improved, stop
        if self.info.is_main or self.sharded:
            metrics = self.validate()
            if metrics and self.info.is_main:
                self._log(metrics)
                value = metrics.get(self.cfg.train.early_stop_metric, float("nan"))
                improved = value > self.state.best_metric
                bad = 0 if improved else self.state.bad_evals + 1
                patience = self.cfg.train.early_stop_patience
                decision = torch.tensor([value, float(improved), float(patience > 0 and bad >= patience)], device=self.device)
        if self.info.distributed:
            torch.distributed.broadcast(decision, src=0)
        value, improved, stop = decision.tolist()
        if math.isnan(value):
            return False, None
        if improved:
            self.state.best_metric, self.state.bad_evals = value, 0
            self.save_model(self.run_dir / "best")
        else:
            self.state.bad_evals += 1
        return bool(stop), value

    def _advance_schedule(self, validated: float | None) -> None:
        """The one place the learning-rate schedule moves: cosine after every optimizer step, plateau after
        every validation (with its metric)."""
        schedule = self.cfg.optim.schedule
        if schedule == "cosine":
            self.scheduler.step()
        elif schedule == "plateau" and validated is not None:
            self.scheduler.step(validated)

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
        window_start, window_steps, sums = time.perf_counter(), 0, {}
        try:
            while self.state.step < t.steps:
                losses = self._optimizer_step(batches)
                self.state.step += 1
                window_steps += 1
                sums = {k: sums.get(k, 0) + v for k, v in losses.items()}
                bar.update(1)
                if self.state.step % t.log_every == 0 or self.state.step == t.steps:
                    metrics = self._reduce(sums, window_steps)
                    elapsed = time.perf_counter() - window_start
                    images = window_steps * t.grad_accum * t.batch_size * self.info.world_size
                    metrics.update(lr=self.optimizer.param_groups[-1]["lr"], images_per_s=images / max(elapsed, 1e-9))
                    self._log(metrics)
                    bar.set_postfix(loss=f"{metrics['loss']:.4f}")
                    window_start, window_steps, sums = time.perf_counter(), 0, {}
                last, validated = self.state.step == t.steps, None
                if (t.eval_every and self.state.step % t.eval_every == 0) or last:
                    stop, validated = self._evaluate_and_maybe_stop()
                    stopped_early = stop and not last
                self._advance_schedule(validated)
                if self.state.step % t.checkpoint_every == 0 or last or stopped_early:
                    self._checkpoint()
                if stopped_early:
                    break
        except KeyboardInterrupt:
            self.tracker.end("KILLED")
            raise
        except BaseException:
            self.tracker.end("FAILED")
            raise
        finally:
            bar.close()
        return self._finish(stopped_early)

    def _finish(self, stopped_early: bool) -> PretrainResult:
        distributed.barrier()
        from medvl.train.export import MODEL_DIR, export_run

        if self.state.best_metric == float("-inf"):  # no validation: the last weights are the model
            self.save_model(self.run_dir / MODEL_DIR)
        model_dir = val = None
        if self.info.is_main:
            concepts = self.concepts.names if self.concepts is not None else None
            model_dir, val = export_run(self.run_dir, self.cohort, self.cfg, self.tracker, self.state, concepts,
                                        str(self.device))  # fmt: skip
        self.tracker.end("FINISHED")
        return PretrainResult(self.run_dir, model_dir, self.state.step, val or {}, self.state.mlflow_run_id, stopped_early)


def run_pretrain(config: PretrainConfig, resume: bool = False) -> PretrainResult:
    """Join the process group if launched distributed, train, and leave it again."""
    info = distributed.setup(backend="gloo" if config.train.device == "cpu" else None)
    try:
        return Trainer.for_config(config, info, resume=resume).fit()
    finally:
        distributed.cleanup()
