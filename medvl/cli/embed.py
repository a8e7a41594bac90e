"""Embed the image-report pairs of a cache with a trained model and score their retrieval.

  medvl embed runs/phantom-tiny/model phantom-cache --split test
  medvl embed models:/medvl-demo@champion covid-cache --split val test -o covid-embeddings.npz

Prints image-to-text and text-to-image R@1/5/10 over the chosen splits (the gallery is every report of those
studies; chance R@k is k / N), how many images lie outside the model's training data (its saved training domain,
docs/predict.md) and, with -o, writes an .npz with the L2-normalised image and text embeddings, the study ids,
the labels in the cache's label space and the out-of-distribution flag of each image.
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "embed a cache's pairs with a model and report retrieval R@1/5/10"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model folder, run folder or MLflow URI (models:/NAME@ALIAS)")
    parser.add_argument("cache", help="a cache folder written by 'medvl cache'")
    parser.add_argument("--split", nargs="+", default=["test"], choices=["train", "val", "test"], help="splits to embed")
    parser.add_argument("--kinds", default="all", choices=["2d", "3d", "all"], help="which items (default all)")
    parser.add_argument("-o", "--out", help="write the embeddings to this .npz file")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from medvl.data.cache import CachedCohort, CacheError
    from medvl.data.pairs import PairDataset, collate_pairs
    from medvl.infer.domain import read_domain
    from medvl.infer.embed import embed_pairs, uses_slices
    from medvl.infer.loading import load_for_inference
    from medvl.infer.model_ref import ModelRefError, resolve_model
    from medvl.infer.profile_fit import cohort_outside
    from medvl.infer.retrieval import retrieval_metrics

    try:
        model_dir = resolve_model(args.model).model_dir
        model, _ = load_for_inference(model_dir)
        domain = read_domain(model_dir)
        cohort = CachedCohort(args.cache)
    except (ModelRefError, CacheError, FileNotFoundError, ValueError) as exc:
        print(f"medvl embed: {exc}", file=sys.stderr)
        return 2
    kinds = args.kinds if args.kinds != "all" or uses_slices(model) else "2d"
    indices = np.concatenate([cohort.select(split, kinds) for split in args.split])
    if len(indices) < 2:
        print(f"medvl embed: {args.cache}: fewer than 2 {kinds} items in split(s) {', '.join(args.split)}", file=sys.stderr)
        return 2
    emb = embed_pairs(model, PairDataset(cohort, indices), collate_pairs, torch.device("cpu"))
    metrics = retrieval_metrics(emb.image, emb.text)
    outside = cohort_outside(domain, cohort, indices, emb.image.numpy()) if domain is not None else None
    if args.out:
        flags = outside if outside is not None else np.zeros(len(indices), dtype=bool)
        np.savez(args.out, image=emb.image.numpy(), text=emb.text.numpy(), study_id=np.asarray(emb.study_ids),
                 labels=emb.labels, label_space=np.asarray(cohort.label_space), out_of_distribution=flags)  # fmt: skip
    n_outside = None if outside is None else int(outside.sum())
    if args.json:
        print(json.dumps({"n": len(indices), **metrics, "out_of_distribution": n_outside}, indent=2))
    else:
        print(f"{len(indices)} pairs ({', '.join(args.split)}); chance R@k = k/{len(indices)}")
        for direction in ("i2t", "t2i"):
            print(f"  {direction}: " + "  ".join(f"R@{k} {metrics[f'{direction}_R{k}']:.3f}" for k in (1, 5, 10)))
        if n_outside is None:
            print("  out of distribution: unknown (the model was saved without a training domain)")
        else:
            print(f"  out of distribution: {n_outside} of {len(indices)} images lie outside the model's training data")
    return 0
