"""The end of a pretraining run: the model folder, its MLflow artifacts, the pyfunc model and its registration."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from medvl.data.cache import CachedCohort
from medvl.data.preprocess import PrepSettings
from medvl.infer.loading import save_concepts, save_preprocess
from medvl.tracking import RunTracker
from medvl.train.checkpoint import TrainState
from medvl.train.settings import PretrainConfig

log = logging.getLogger(__name__)
MODEL_DIR = "model"


def export_run(
    run_dir: Path,
    cohort: CachedCohort,
    config: PretrainConfig,
    tracker: RunTracker,
    state: TrainState,
    concepts: Sequence[str] | None,
    device: str,
) -> tuple[Path, dict[str, float]]:
    """Complete ``RUN_DIR/model/`` (the best validated weights when validation ran; else the last, which the
    trainer wrote there) and log it to ``tracker``; rank 0 only.

    Args:
        run_dir: the run folder.
        cohort: the training cache (its preprocessing and lineage go with the model).
        config: the run's settings.
        tracker: the run's MLflow tracker.
        state: where training ended (steps taken, the MLflow run id).
        concepts: the patch-concept vocabulary, or None.
        device: where the calibration fit embeds the validation split.

    Returns the model folder and the validation metrics of the exported weights.
    """
    model_dir = run_dir / MODEL_DIR
    best = run_dir / "best"
    val: dict[str, float] = {}
    if best.is_dir():
        if model_dir.exists():
            shutil.rmtree(model_dir)
        shutil.copytree(best, model_dir)
        val = _best_validation(run_dir, config.train.early_stop_metric)
    save_preprocess(PrepSettings.from_dict(cohort.settings), model_dir)
    if concepts is not None:
        save_concepts(list(concepts), model_dir)
    if config.train.calibrate:
        _fit_profile(model_dir, cohort, config, device)
    (model_dir / "lineage.json").write_text(json.dumps({
        "manifest_hash": cohort.manifest_hash, "cache_key": cohort.key, "mlflow_run_id": state.mlflow_run_id,
        "steps": state.step,
    }, indent=2) + "\n")  # fmt: skip
    tracker.log_artifact(model_dir, "model_files")
    tracker.log_artifact(run_dir / "metrics.jsonl")
    if val:
        tracker.log_metrics({f"final_{k}": v for k, v in val.items()}, step=state.step)
    tracking = config.tracking
    if tracking.log_model and tracker.run_id and not tracker.offline:
        from medvl.infer.pyfunc import log_pyfunc

        try:
            uri, version = log_pyfunc(model_dir, tracker.run_id, tracker.uri, tracking.register_as)
        except Exception as exc:  # noqa: BLE001 - the weights are safe on disk; say what failed
            log.warning("could not log the pyfunc model to MLflow (%s); the model is in %s", exc, model_dir)
        else:
            tracker.set_tags({"medvl.model_uri": uri, "medvl.registered_version": version or ""})
            log.info("logged %s%s", uri, f" as {tracking.register_as} version {version}" if version else "")
    return model_dir, val


def _fit_profile(model_dir: Path, cohort: CachedCohort, config: PretrainConfig, device: str) -> None:
    """Save the calibration and training domain beside the weights (:mod:`medvl.infer.profile_fit`); a failure
    leaves the model uncalibrated with a warning (``medvl calibrate`` fits them later)."""
    from medvl.infer.profile_fit import fit_profile

    d = config.data
    try:
        calibration, domain = fit_profile(model_dir, cohort.cache_dir, d.train_split, d.val_split, device,
                                          config.train.seed)  # fmt: skip
    except (ValueError, OSError, RuntimeError) as exc:
        log.warning("could not fit the calibration (%s); the model is uncalibrated: run 'medvl calibrate %s CACHE'",
                    exc, model_dir)  # fmt: skip
        return
    offered = {kind: len(findings) for kind, findings in calibration.kinds.items()}
    log.info("trained on %s; calibrated findings per kind: %s", domain.describe(), offered or "none")


def _best_validation(run_dir: Path, metric: str) -> dict[str, float]:
    """The validation metrics logged at the step with the best ``metric``."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evaluated = [r for r in rows if metric in r]
    if not evaluated:
        return {}
    best = max(evaluated, key=lambda r: r[metric])
    return {k: v for k, v in best.items() if k.startswith("val_")}
