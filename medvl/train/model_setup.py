"""What a run needs before its first step: the cache (built when missing in a single process; a distributed
job only checks it) and the model."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medvl.config import ConfigError, merge_settings, save_config
from medvl.data.cache import META_FILE, CachedCohort, CacheError, read_meta
from medvl.data.cache_build import build_cache, manifest_cache_key, whole_cache_key
from medvl.data.pairs import report_text
from medvl.data.preprocess import PrepSettings
from medvl.models.registry import build_model, load_pretrained
from medvl.models.vlm import VisionLanguageModel
from medvl.train import distributed
from medvl.train.settings import DataSettings, PretrainConfig

TOKENIZER_DIR = "tokenizer"


@dataclass(frozen=True)
class PreparedRun:
    """What a run trains, made before its :class:`~medvl.train.trainer.Trainer`: the run folder (holding the
    resolved config), the training cache and the model with its tokenizer."""

    run_dir: Path
    cohort: CachedCohort
    model: VisionLanguageModel


def prepare_run(config: PretrainConfig, info: distributed.DistInfo) -> PreparedRun:
    """Seed, write the run folder's config, build (or check) the training cache, train the tokenizer when the
    recipe asks for one and build the model; each process gets the same model."""
    run_dir = Path(config.output_dir) / config.run_name
    torch.manual_seed(config.train.seed)
    np.random.seed(config.train.seed % 2**32)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
    cohort = ensure_cache(config.data, info)
    return PreparedRun(run_dir, cohort, build_training_model(config, cohort, run_dir, info))


def ensure_cache(data: DataSettings, info: distributed.DistInfo) -> CachedCohort:
    """The training cache. A single process builds (or completes) it from ``data.manifest`` when one is given; a
    distributed job never writes it: every rank refuses at once unless it is complete and, with ``data.manifest``,
    up to date (building it is its own step, ``medvl cache``)."""
    if not data.cache:
        raise ConfigError("data.cache is not set: give the folder of a 'medvl cache' run (and data.manifest to build it)")
    cache = Path(data.cache)
    settings = PrepSettings(size=data.image_size, ct_window=data.ct_window, crop_body=data.crop_body)
    if info.distributed:
        _check_built(cache, data, settings, info.world_size)
    elif data.manifest:
        _refuse_other_cache(cache, data, settings)
        build_cache(data.manifest, cache, settings)
    elif not (cache / META_FILE).is_file():
        raise FileNotFoundError(f"{cache}: no cache here; run 'medvl cache MANIFEST -o {cache}' or set data.manifest")
    return CachedCohort(cache)


def _refuse_other_cache(cache: Path, data: DataSettings, settings: PrepSettings) -> None:
    """Refuse, with what to set instead, a folder holding a cache made at other preprocessing settings (a cache of
    another manifest at these settings is :func:`build_cache`'s to refuse; the manifest is not read here)."""
    if not (cache / META_FILE).is_file():
        return
    held = read_meta(cache).get("settings", {})
    if held == settings.as_dict():
        return
    raise CacheError(
        f"{cache}: holds a cache made at {_described(held)}, not at the run's {_as_overrides(settings.as_dict())}; train at its "
        f"settings ({_as_overrides(held)}), give another data.cache folder, or rebuild it: "
        f"'medvl cache {data.manifest} -o {cache} {_cache_flags(settings)} --overwrite'"
    )


def _described(settings: dict) -> str:
    """``64 px, mediastinum window[, cropped to the body]``."""
    crop = ", cropped to the body" if settings.get("crop_body") else ""
    return f"{settings.get('size')} px, {settings.get('ct_window')} window{crop}"


def _as_overrides(settings: dict) -> str:
    """The ``data.*`` overrides that train on a cache made with ``settings``."""
    return (f"data.image_size={settings.get('size')} data.ct_window={settings.get('ct_window')} "
            f"data.crop_body={str(bool(settings.get('crop_body'))).lower()}")


def _cache_flags(settings: PrepSettings) -> str:
    """The ``medvl cache`` flags that build a cache with ``settings``."""
    return f"--size {settings.size} --ct-window {settings.ct_window}{' --crop-body' if settings.crop_body else ''}"


def _check_built(cache: Path, data: DataSettings, settings: PrepSettings, world_size: int) -> None:
    """Refuse (no collective call, so every rank at once) a cache that is missing, unfinished or out of date."""
    key = whole_cache_key(cache)
    stale = key is not None and bool(data.manifest) and key != manifest_cache_key(data.manifest, settings)
    if key is not None and not stale:
        return
    problem = (f"not the cache of {data.manifest} at these data.image_size, data.ct_window and data.crop_body"
               if stale else "no complete cache here")
    error = CacheError if stale else FileNotFoundError
    raise error(f"{cache}: {problem}, and a job of {world_size} processes does not build one; build it as its own "
                f"step first: 'medvl cache {data.manifest or 'MANIFEST'} -o {cache} {_cache_flags(settings)}"
                f"{' --overwrite' if stale else ''}' (on a cluster: one '--shard i/n' task per part, "
                f"then 'medvl cache --merge PART... -o {cache}'; see docs/cluster.md)")


def _train_tokenizer(
    cohort: CachedCohort, split: str, vocab_size: int, out_dir: Path, info: distributed.DistInfo, marks: bool
) -> Path:
    """A WordPiece tokenizer trained on the training split's reports, with assertion marks when the model uses them
    (:mod:`medvl.text.assertion_marks`; rank 0, the others wait)."""
    if info.is_main and not (out_dir / "tokenizer.json").is_file():
        from medvl.text.assertion_marks import mark_all
        from medvl.text.tokenizer import train_wordpiece

        texts = [report_text(cohort[i]) for i in range(len(cohort)) if cohort.splits[i] == split]
        train_wordpiece(mark_all(texts) if marks else texts, vocab_size=vocab_size, out_dir=out_dir)
    distributed.barrier()
    return out_dir


def model_overrides(config: PretrainConfig, cohort: CachedCohort, run_dir: Path, info: distributed.DistInfo) -> dict[str, Any]:
    """The architecture overrides of a run: the user's, the cache's image size, a trained tokenizer."""
    overrides = copy.deepcopy(config.model.overrides)
    overrides = merge_settings({"image": {"image_size": cohort.size}}, overrides)
    if config.model.tokenizer == "wordpiece":
        marks = bool(overrides.get("text", {}).get("assertion_marks", False))
        folder = _train_tokenizer(cohort, config.data.train_split, config.model.vocab_size, run_dir / TOKENIZER_DIR, info,
                                  marks)
        overrides = merge_settings(overrides, {"text": {"tokenizer": str(folder.resolve())}})
    return overrides


def build_training_model(config: PretrainConfig, cohort: CachedCohort, run_dir: Path, info: distributed.DistInfo) -> VisionLanguageModel:
    """A fresh model from the registry, or ``model.init_from`` (a saved model) with the run's overrides."""
    if config.model.init_from:  # a saved model keeps its image size and tokenizer
        return load_pretrained(config.model.init_from, **copy.deepcopy(config.model.overrides))
    return build_model(config.model.name, **model_overrides(config, cohort, run_dir, info))
