"""How stable is a pretraining recipe from seed to seed? Zero-shot, retrieval and heatmap faithfulness per seed.

    .venv/bin/python benchmarks/phantom_seeds.py --seeds 0 1 2 3
    .venv/bin/python benchmarks/phantom_seeds.py --seeds 0 1 2 3 --set model.overrides.loss.weights.concept=0
    .venv/bin/python benchmarks/phantom_seeds.py --seeds 0 1 2 3 4 --set data.label_prompts=1 \
        --manifest iu-phantoms.parquet --work iu-seeds      # real report language (medvl synth --from-reports)
    .venv/bin/python benchmarks/phantom_seeds.py --seeds 0 1 2 3 4 --manifest iu-phantoms.parquet --work iu-pre \
        --set 'model.init_from=phantom-seeds/seed-{seed}/phantom-tiny/model'   # start from the phantom towers
    .venv/bin/python benchmarks/phantom_seeds.py --seeds 0 1 2 3 4 --manifest iu-phantoms.parquet --work iu-pre \
        --model 'phantom-seeds/seed-{seed}/phantom-tiny/model'                  # measure saved models, no training

Synthesizes the test session's phantom cohort (1,200 radiographs at 128 px, seed 1) unless ``--work`` already
holds it, trains ``--recipe`` once per seed (``train.seed=N`` plus any ``--set`` overrides) and prints, per seed:
zero-shot AUROC per planted finding on the test split (the app's prompt ensembles, positive vs negative) and
the mean patch-concept zero-shot AUROC (:func:`medvl.infer.zeroshot.cohort_concept_aurocs`),
validation retrieval at the last evaluation, test retrieval (R@5 both ways), the test positives per finding and
each AUROC's standard error (Hanley & McNeil: a finding with a dozen positives is read coarsely), and the
pointing game and deletion test of :mod:`medvl.infer.faithfulness`. Results go to ``WORK/seeds.jsonl`` as well.
Each seed is a full training run (about 5 CPU minutes for phantom-tiny on 2 cores). ``--manifest`` trains on
another phantom cohort's manifest instead (e.g. radiographs rendered from real reports, ``medvl synth
--from-reports iu-xray``); ``{seed}`` in ``--set`` or ``--model`` stands for the seed.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medvl.cli import main as medvl_main
from medvl.config import load_config
from medvl.data.cache import CachedCohort
from medvl.data.pairs import PairDataset, collate_pairs
from medvl.infer.embed import embed_pairs
from medvl.infer.faithfulness import FINDINGS_2D, measure
from medvl.infer.loading import load_for_inference, read_concepts
from medvl.infer.retrieval import retrieval_metrics
from medvl.infer.zeroshot import cohort_concept_aurocs, prompt_ensemble_aurocs
from medvl.text.concepts import ConceptVocabulary
from medvl.text.lexicon import Lexicon
from medvl.text.prompts import build_prompts
from medvl.train.settings import PretrainConfig
from medvl.train.trainer import run_pretrain

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def prepare_cohort(work: Path) -> tuple[Path, Path]:
    """The session fixture's cohort, manifest and cache folder (made once)."""
    cohort, manifest = work / "cohort", work / "manifest.parquet"
    if not manifest.is_file():
        assert (
            medvl_main(["synth", "-o", str(cohort), "--n-2d", "1200", "--size", "128", "--seed", "1", "-q"])
            == 0
        )
        assert medvl_main(["ingest", "phantom", str(cohort), "-o", str(manifest), "-q"]) == 0
    return manifest, work / "cache"


def auroc_standard_error(auroc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil's (1982) standard error of an AUROC: with few positives one reading is coarse."""
    q1, q2 = auroc / (2 - auroc), 2 * auroc**2 / (1 + auroc)
    variance = auroc * (1 - auroc) + (positives - 1) * (q1 - auroc**2) + (negatives - 1) * (q2 - auroc**2)
    return float(np.sqrt(variance / (positives * negatives)))


@dataclass(frozen=True)
class TestReadings:
    """What one model reads on the test split."""

    prompt_aurocs: dict[str, float]  # the app's prompt ensembles, per planted finding
    concept_aurocs: dict[str, float]  # patch-concept scores, per finding with a trained concept
    retrieval: dict[str, float]  # image-report R@5 both ways
    positives: dict[str, int]  # positive test studies per planted finding
    studies: int


def read_test_split(model_dir: Path, cache: Path) -> TestReadings:
    """Zero-shot AUROCs, retrieval and the positives they rest on, from one pass over the test split."""
    model, _ = load_for_inference(model_dir)
    cohort = CachedCohort(cache)
    emb = embed_pairs(model, PairDataset(cohort, cohort.select("test", "2d")), collate_pairs, CPU)
    prompts = build_prompts()
    findings = {f: prompts[f] for f in FINDINGS_2D}
    ensembles = prompt_ensemble_aurocs(model, emb.image, emb.labels, cohort.label_space, findings)
    trained = read_concepts(model_dir)
    vocabulary = ConceptVocabulary(trained, Lexicon.default())
    with_concept = [f for f in FINDINGS_2D if vocabulary.for_observation(f) is not None]  # rare ones may lack one
    space = list(cohort.label_space)
    positives = {f: int((emb.labels[:, space.index(f)] == 1).sum()) for f in FINDINGS_2D}
    return TestReadings(ensembles, cohort_concept_aurocs(model, cohort, with_concept, trained),
                        retrieval_metrics(emb.image, emb.text, (5,)), positives, len(emb.labels))  # fmt: skip


def last_validation(run_dir: Path) -> dict[str, float]:
    """The run's last logged validation metrics."""
    rows = [
        json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if "val_" in line
    ]
    return {k: v for k, v in rows[-1].items() if k.startswith("val_")} if rows else {}


def for_seed(text: str, seed: int) -> str:
    """``text`` with ``{seed}`` standing for the seed."""
    return text.replace("{seed}", str(seed))


def train_seed(recipe: Path, seed: int, overrides: list[str], work: Path, manifest: Path, cache: Path) -> Path:
    """Train one seed; returns its run folder."""
    out = work / f"seed-{seed}"
    config = load_config(PretrainConfig, recipe, [
        f"output_dir={out}", f"data.manifest={manifest}", f"data.cache={cache}",
        f"tracking.uri=sqlite:///{out / 'mlflow.db'}", f"train.seed={seed}", *overrides,
    ])  # fmt: skip
    return run_pretrain(config).run_dir


def measure_seed(seed: int, overrides: list[str], model_dir: Path, cache: Path, val: dict[str, float]) -> dict:
    """One seed's row: zero-shot, retrieval at the last validation (``val``), heatmap faithfulness."""
    test = read_test_split(model_dir, cache)
    aurocs, positives = test.prompt_aurocs, test.positives
    faith = measure(model_dir, cache)
    return {
        "seed": seed,
        "overrides": overrides,
        "zero_shot": {k: round(v, 3) for k, v in aurocs.items()},
        "zero_shot_mean": round(float(np.mean(list(aurocs.values()))), 3),
        "test_positives": positives,
        "zero_shot_se": {
            k: round(auroc_standard_error(v, positives[k], test.studies - positives[k]), 3) for k, v in aurocs.items()
        },
        "patch_concept_mean": round(float(np.mean(list(test.concept_aurocs.values()))), 3),
        "val_i2t_R5": round(val.get("val_i2t_R5", float("nan")), 3),
        "val_t2i_R5": round(val.get("val_t2i_R5", float("nan")), 3),
        "test_i2t_R5": round(test.retrieval["i2t_R5"], 3),
        "test_t2i_R5": round(test.retrieval["t2i_R5"], 3),
        "pointing": round(faith.pointing, 3),
        "pointing_chance": round(faith.chance_rate, 3),
        "studies": len(faith.hits),
        "drop_top": round(float(np.mean(faith.drop_top)), 4),
        "drop_random": round(float(np.mean(faith.drop_random)), 4),
    }


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=REPO / "configs" / "pretrain" / "phantom-tiny.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override applied to every seed (repeatable); {seed} in it stands for the seed, e.g. "
                             "model.init_from=pre/seed-{seed}/phantom-tiny/model")  # fmt: skip
    parser.add_argument(
        "--work", type=Path, default=Path("phantom-seeds"), help="cohort, cache and runs go here"
    )
    parser.add_argument("--manifest", type=Path, help="train on this phantom manifest instead of synthesizing one")
    parser.add_argument("--model", metavar="DIR",
                        help="measure this saved model instead of training one ({seed} stands for the seed)")  # fmt: skip
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    manifest, cache = (args.manifest, args.work / "cache") if args.manifest else prepare_cohort(args.work)
    for seed in args.seeds:
        overrides = [for_seed(override, seed) for override in args.overrides]
        if args.model:
            model_dir, val = Path(for_seed(args.model, seed)), {}
        else:
            run_dir = train_seed(args.recipe, seed, overrides, args.work, manifest, cache)
            model_dir, val = run_dir / "model", last_validation(run_dir)
        row = measure_seed(seed, overrides, model_dir, cache, val)
        print(json.dumps(row), flush=True)
        with (args.work / "seeds.jsonl").open("a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
