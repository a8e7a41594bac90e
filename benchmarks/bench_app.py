"""Review-app latency: first findings + attribution for a 512 px radiograph and a 64-slice CT, model loaded.

    .venv/bin/python benchmarks/bench_app.py [--model MODEL_DIR] [--repeats 5]

Measured per study (median of ``--repeats`` runs, after one warm-up), side by side in one process:

- ``app``: what the app does when a study is opened with a loaded model (text bank embedded once at load):
  ``prepare_input`` + :func:`medvl.infer.attribution.analyse` (one encoder pass for the findings and four
  quarter-stride-shifted passes for the dense region grid) + findings + the heatmap of one finding at display
  size + slice scores + top concepts;
- ``naive``: the baseline that recomputes everything per request: prompt ensembles and concept texts embedded
  again, one pass for the findings (``encode_image`` / ``encode_volume``) and the passes of ``analyse`` again
  for the heatmap.

A last column, ``coarse``, is the app's path with regions on the encoder's own grid (``analyse(dense=False)``):
what the finer heatmap costs.

Without ``--model`` an untrained ``tiny-radclip-resnet18`` (the architecture of the test models) is used; the
timings depend on the architecture and input size, not on the weights.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from medvl.data.phantom import read_index, synthesize
from medvl.infer import attribution as A
from medvl.infer.embed import encode_texts
from medvl.infer.loading import load_for_inference, prepare_input, read_concepts
from medvl.infer.zeroshot import class_embeddings, zero_shot_probabilities
from medvl.io import load
from medvl.text.prompts import build_prompts


def _median_ms(work: Callable[[], object], repeats: int) -> float:
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def app_path(model, prep, bank, path: Path, shape: tuple[int, int], dense: bool = True) -> None:
    """The app's path: cached text bank, one analysis (``dense=False``: regions on the encoder's own grid)."""
    model_input = prepare_input(path, prep)
    analysis = A.analyse(model, model_input, dense=dense)
    A.finding_scores(analysis, bank)
    direction = bank.direction("Pleural Effusion")
    scores = A.slice_scores(analysis, direction, bank.scale)
    A.heatmap(analysis, direction, bank.scale, A.top_slices(scores, 1)[0], out_shape=shape)
    A.top_concepts(analysis, bank)


@torch.no_grad()
def naive_path(model, prep, bank, path: Path, shape: tuple[int, int]) -> None:
    """The baseline: texts embedded again, one pass for findings, the regions' passes again for the heatmap."""
    device = torch.device("cpu")
    names, pos, neg = class_embeddings(model, build_prompts(), device)
    concept_texts = [c.name for c in bank.concepts]
    encode_texts(model, concept_texts, device)
    model_input = prepare_input(path, prep)
    if model_input.is_volume:
        slices, z = model_input.volume_tensors()
        embedding = model.encode_volume(slices, z).embedding
    else:
        embedding = model.encode_image(model_input.image_tensor())
    zero_shot_probabilities(embedding, pos, neg, bank.scale)
    direction = pos[names.index("Pleural Effusion")] - neg[names.index("Pleural Effusion")]
    A.heatmap(A.analyse(model, model_input), direction, bank.scale, out_shape=shape)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="saved model folder (default: untrained tiny-radclip-resnet18)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            from medvl.models.registry import build_model

            torch.manual_seed(0)
            model_dir = build_model("tiny-radclip-resnet18").save_pretrained(Path(tmp) / "model")
        model, prep = load_for_inference(model_dir)
        start = time.perf_counter()
        bank = A.build_text_bank(model, trained_concepts=read_concepts(model_dir))
        bank_s = time.perf_counter() - start
        index = synthesize(Path(tmp) / "cohort", n_2d=1, n_3d=1, seed=0, size=512, ct_size=128, depth_range=(64, 64))
        rows = {r["kind"]: index.parent / r["image"] for r in read_index(index.parent)}
        print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
              f"torch {torch.__version__}; model {model_dir}; text bank built once in {bank_s:.1f} s")  # fmt: skip
        print(f"{'study':<28}{'app ms':>10}{'naive ms':>10}{'speed-up':>10}{'coarse ms':>11}")
        for kind, label in (("2d", "512 px radiograph (PNG)"), ("3d", "64-slice CT (NIfTI 128 px)")):
            shape = load(rows[kind]).display_array().shape[-2:]
            fast = _median_ms(lambda p=rows[kind], s=shape: app_path(model, prep, bank, p, s), args.repeats)
            slow = _median_ms(lambda p=rows[kind], s=shape: naive_path(model, prep, bank, p, s), args.repeats)
            coarse = _median_ms(lambda p=rows[kind], s=shape: app_path(model, prep, bank, p, s, False), args.repeats)
            print(f"{label:<28}{fast:>10.0f}{slow:>10.0f}{slow / fast:>9.1f}x{coarse:>11.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
