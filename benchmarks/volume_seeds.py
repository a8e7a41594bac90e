"""Do volume models learn, from seed to seed? RadCLIP's two stages on CT phantoms, measured on held-out patients.

    .venv/bin/python benchmarks/volume_seeds.py --seeds 0 1 2
    .venv/bin/python benchmarks/volume_seeds.py --seeds 0 1 2 --recipe configs/pretrain/phantom-volume-3d.yaml

Synthesizes a CT phantom cohort (``--n-3d`` volumes of 40-200 slices at 0.6-5 mm, cohort seed 1) unless
``--work`` already holds it, trains ``--recipe`` (``configs/pretrain/phantom-volume.yaml``: the 2D stage, then
the slice adapter) once per seed with ``train.seed=N`` plus any ``--set`` overrides, and prints per seed what
:mod:`medvl.infer.volume_eval` measures on the test split (the patients whose reports use held-out phrasings):
zero-shot AUROC per finding as the review app scores it, volume-report R@k both ways against chance, and how
often the app's top 3 slices contain a focal lesion against 3 random slices, and the benchx phantom-3d linear probe
(macro AUROC with its 95% CI). The same architecture untrained (the random twin) is measured once. Rows go to
``WORK/volume-seeds.jsonl`` too.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from medvl.cli import main as medvl_main
from medvl.infer.volume_eval import evaluate_volumes
from medvl.train.stages import plan_stages

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "pretrain" / "phantom-volume.yaml"


def prepare_cohort(work: Path, n_3d: int, n_2d: int, ct_size: int, depth: str) -> Path:
    """The cohort's manifest (synthesised and ingested once)."""
    cohort, manifest = work / "cohort", work / "manifest.parquet"
    if not manifest.is_file():
        synth = ["synth", "-o", str(cohort), "--n-2d", str(n_2d), "--n-3d", str(n_3d), "--ct-size", str(ct_size),
                 "--depth", depth, "--ct-dicom-fraction", "0.1", "--seed", "1", "--workers", "2", "-q"]  # fmt: skip
        if medvl_main(synth) or medvl_main(["ingest", "phantom", str(cohort), "-o", str(manifest), "-q"]):
            raise SystemExit("could not make the phantom cohort")
    return manifest


def summary(evaluation: dict) -> dict:
    """The figures the issue's targets name, rounded."""
    r = evaluation["retrieval"]
    return {
        "volumes": evaluation["n_volumes"],
        "zero_shot_mean": round(evaluation["zero_shot_mean"], 3),
        "zero_shot": {k: round(v, 3) for k, v in evaluation["zero_shot_auroc"].items()},
        "i2t_R5": round(r["i2t_R5"], 3),
        "t2i_R5": round(r["t2i_R5"], 3),
        "chance_R5": round(r["chance_R5"], 4),
        "R5_x_chance": round(min(r["i2t_R5"], r["t2i_R5"]) / r["chance_R5"], 2),
        "slice_hit_rate": round(evaluation["slice_hit_rate"], 3),
        "slice_chance_rate": round(evaluation["slice_chance_rate"], 3),
        "slice_lift": round(evaluation["slice_lift"], 2),
        "lesions": evaluation["slice_lesions"],
    }


def linear_probe(model: str, work: Path, name: str) -> dict:
    """benchx phantom-3d linear probe (all training labels, seeds 0-2): macro AUROC with its 95% CI."""
    from benchx.api import evaluate

    results = evaluate(model, "phantom", tasks=["linear_probe"], fractions=[1.0], datasets=["phantom-3d"],
                       out_dir=work / f"benchx-{name}", tracking_uri=f"sqlite:///{work / 'benchx.db'}",
                       data_dir=work / "benchx-data", progress=False)  # fmt: skip
    row = next(r for r in results.results if r.metric == "auroc_macro" and not r.group)
    return {"probe_auroc": round(row.mean, 3), "probe_ci": [round(row.ci_low, 3), round(row.ci_high, 3)]}


def run_seed(recipe: Path, seed: int, overrides: list[str], work: Path, manifest: Path) -> dict:
    """Train every stage of ``recipe`` for one seed and evaluate the last stage's model."""
    out = work / f"seed-{seed}"
    settings = [f"output_dir={out}", f"data.manifest={manifest}", f"data.cache={work / 'cache'}",
                f"tracking.uri=sqlite:///{out / 'mlflow.db'}", f"train.seed={seed}", *overrides]  # fmt: skip
    started = time.perf_counter()
    if medvl_main(["pretrain", str(recipe), *settings]):
        raise SystemExit(f"seed {seed}: training failed")
    minutes = (time.perf_counter() - started) / 60
    model_dir = plan_stages(recipe, settings)[-1].run_dir / "model"
    row = {"seed": seed, "overrides": overrides, "train_minutes": round(minutes, 1)}
    row |= summary(evaluate_volumes(model_dir, work / "cache", "test", progress=True).as_dict())
    return row | linear_probe(str(model_dir), work, f"seed-{seed}")


def random_twin(work: Path) -> dict:
    """The trained architecture with fresh weights (as benchx's ``random:`` baseline builds it, with the registry's
    default tokenizer), measured the same way."""
    import torch

    from medvl.infer.loading import read_preprocess, save_preprocess
    from medvl.models.registry import build_model, load_pretrained

    trained = sorted(work.glob("seed-*/*/model"))
    if not trained:
        raise SystemExit("train a seed first: the twin copies a trained model's architecture and preprocessing")
    config = load_pretrained(trained[-1]).config
    torch.manual_seed(0)
    twin = build_model(config["name"], image={"image_size": config["image"]["image_size"]}, schedule=config["schedule"])
    twin_dir = twin.save_pretrained(work / "random-twin")
    save_preprocess(read_preprocess(trained[-1]), twin_dir)
    row = {"seed": "random twin"} | summary(evaluate_volumes(twin_dir, work / "cache").as_dict())
    return row | linear_probe(str(twin_dir), work, "random-twin")


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override applied to every stage and seed (repeatable)")  # fmt: skip
    parser.add_argument("--work", type=Path, default=Path("volume-seeds"), help="cohort, cache and runs go here")
    parser.add_argument("--n-3d", type=int, default=800, help="CT volumes in the cohort (test split: about 20%%)")
    parser.add_argument("--n-2d", type=int, default=0, help="radiographs in the cohort (the 2D stage trains on them too)")
    parser.add_argument("--ct-size", type=int, default=96, help="CT matrix of the synthesised volumes")
    parser.add_argument("--depth", default="40,200", help="slices per volume, LOW,HIGH")
    parser.add_argument("--no-twin", action="store_true", help="skip the untrained twin")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    manifest = prepare_cohort(args.work, args.n_3d, args.n_2d, args.ct_size, args.depth)
    for seed in args.seeds:
        report(run_seed(args.recipe, seed, args.overrides, args.work, manifest), args.work)
    if not args.no_twin:
        report(random_twin(args.work), args.work)


def report(row: dict, work: Path) -> None:
    """Print a finished row and append it to ``WORK/volume-seeds.jsonl`` (each seed as soon as it is measured)."""
    print(json.dumps(row), flush=True)
    with (work / "volume-seeds.jsonl").open("a") as fh:
        fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
