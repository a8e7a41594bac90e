"""How learnable are the CT phantoms' findings for the tiny volume encoder? A supervised ceiling for the recipes.

    .venv/bin/python benchmarks/volume_ceiling.py --cache volume-seeds/cache --head linear cosine concept
    .venv/bin/python benchmarks/volume_ceiling.py --cache CACHE --head linear --jitter --steps 1000 --eval-slices 256
    .venv/bin/python benchmarks/volume_ceiling.py --cache CACHE --labels slices --steps 3000 --figure lookalikes.png
    .venv/bin/python benchmarks/volume_ceiling.py --cache CACHE --labels key-images --steps 2000

Trains the image encoder of ``tiny-radclip-resnet18`` (64 px, group norm) from scratch on the ground-truth
labels of the six planted findings (not the reports), each volume pooled as stage 2d pools it (best region of
any slice), for ``--steps`` steps of 16 volumes x 24 slices, and prints the test AUROC per finding. Heads:
``linear`` (a linear layer on the pooled encoder features), ``cosine`` (the patch-concept term's form: the best
projected region's cosine with a learnt vector per finding, scaled, plus a bias) and ``concept`` (the same with
the text tower's embedding of each finding's concept name in place of the learnt vectors). Reports teach less
than labels, so what a head cannot reach here the pretraining recipe cannot reach either. ``--jitter`` draws
the training slices anew each step (``data.slice_draw: jittered``), ``--augment`` augments them as
``data.augment`` does, and ``--eval-split train`` measures how well the head fits its own training volumes.

``--labels slices`` trains on each slice's own labels instead, read from the phantom masks (a slice shows a
finding when any of its pixels carries the finding's bit), 128 slices a step, linear head. It prints the
per-slice test AUROC and the volume AUROC of the same classifier read as the app reads a volume (its best
slice), which separates "can a slice show it" from "does the best slice of a volume find it"; ``--figure``
shows what the best slices of volumes without a focal finding look like to it. ``--labels key-images`` trains
on what a report citing key images tells instead (:func:`key_image_targets`): the slice where each lesion is
largest shows it, every slice of a volume without it does not, the other slices are unknown.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from medvl.augment import augment_batch, draw_batch
from medvl.data.cache import CachedCohort
from medvl.data.phantom.findings import CT_FINDINGS, FOCAL_CT_FINDINGS
from medvl.data.phantom.labels import MASK_BITS_3D
from medvl.models import build_model
from medvl.train.batches import augment_strength

CONCEPTS = {"Lung Lesion": "lung nodule", "Pleural Effusion": "pleural effusion", "Liver Lesion": "liver lesion",
            "Kidney Cyst": "renal cyst", "Ascites": "ascites", "Lymphadenopathy": "lymphadenopathy"}  # fmt: skip


class Probe(torch.nn.Module):
    """The model's image tower plus one of the heads."""

    def __init__(self, head: str, size: int) -> None:
        super().__init__()
        self.model = build_model("tiny-radclip-resnet18", image={"image_size": size})
        self.head = head
        dim = self.model.config["embed_dim"]
        self.linear = torch.nn.Linear(self.model.image_encoder.out_channels, len(CT_FINDINGS))
        self.vectors = torch.nn.Parameter(torch.randn(len(CT_FINDINGS), dim) * 0.02)
        self.scale, self.bias = torch.nn.Parameter(torch.tensor(math.log(10.0))), torch.nn.Parameter(torch.tensor(-5.0))
        self.names = self.model.tokenize([CONCEPTS[f] for f in CT_FINDINGS])

    def forward(self, x: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        b, s = x.shape[:2]
        fmap = self.model.image_encoder.feature_map(x.reshape(b * s, 1, *x.shape[2:]))
        real = (torch.arange(s)[None] < depth[:, None]).reshape(b * s)
        if self.head == "linear":
            pooled = fmap.flatten(2).amax(2).masked_fill(~real[:, None], -1e4).reshape(b, s, -1).amax(1)
            return self.linear(pooled)
        regions = F.normalize(self.model.image_projection(fmap.flatten(2).transpose(1, 2)), dim=-1)
        classes = self.vectors if self.head == "cosine" else self.model.encode_text(**self.names)
        sims = torch.einsum("rnd,cd->rnc", regions, F.normalize(classes, dim=-1)).amax(1)
        sims = sims.masked_fill(~real[:, None], -2.0).reshape(b, s, -1).amax(1)
        return self.scale.exp() * sims + self.bias


def run(cache: CachedCohort, head: str, steps: int, slices: int, seed: int, jitter: bool, eval_slices: int,
        eval_split: str = "test", augment: str = "none") -> dict[str, float]:
    """Train one head (``jitter``: training volumes draw their slices anew each step) and return its AUROC per
    finding on ``eval_split`` (``train``: how well it fits), each volume read at ``eval_slices`` evenly spread
    slices at most; ``augment`` names the training augmentation (as ``data.augment``)."""
    torch.manual_seed(seed)
    columns = [cache.label_space.index(f) for f in CT_FINDINGS]
    train = np.flatnonzero((cache.splits == "train") & cache.is_volume)
    test = np.flatnonzero((cache.splits == eval_split) & cache.is_volume)

    def batch(indices: np.ndarray, count: int, draws: np.ndarray | None = None) -> tuple[torch.Tensor, ...]:
        pixels, depth, _ = cache.read_batch(indices, count, draws)
        labels = torch.from_numpy(cache.item_labels(indices)[:, columns]).nan_to_num(0.0)
        return torch.from_numpy(pixels).float() / 255.0, torch.from_numpy(depth), labels

    probe = Probe(head, cache.size)
    optimizer = torch.optim.Adam(probe.parameters(), 1e-3)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        chosen = rng.choice(train, 16, replace=False)
        x, depth, y = batch(chosen, slices, rng.random((16, slices)) if jitter else None)
        if augment_strength(augment) is not None:
            real = torch.arange(x.shape[1])[None] < depth[:, None]
            draws = draw_batch(augment_strength(augment), rng.integers(0, 2**62, 16), x.shape[2], x.shape[3], x.shape[3])
            x = augment_batch(x, draws, x.shape[3], channel_mask=real)
        loss = F.binary_cross_entropy_with_logits(probe(x, depth), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    probe.eval()
    scores, truth = [], []
    with torch.no_grad():
        for start in range(0, len(test), 16):
            x, depth, y = batch(test[start : start + 16], eval_slices)
            scores.append(probe(x, depth))
            truth.append(y)
    p, t = torch.cat(scores).numpy(), torch.cat(truth).numpy()
    return {f: round(float(roc_auc_score(t[:, j], p[:, j])), 3) for j, f in enumerate(CT_FINDINGS)}


def _slices_of(cache: CachedCohort, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every slice of ``indices`` as uint8 ``(N, H, W)`` and its lesion area per finding ``(N, F)`` in pixels, in
    CT_FINDINGS order."""
    bits = np.array([MASK_BITS_3D[f] for f in CT_FINDINGS], dtype=np.uint8)
    pixels, areas = [], []
    for i in indices:
        item = cache[int(i)]
        if "mask" not in item:
            raise SystemExit(f"{cache.cache_dir}: volume {item['study_id']} has no mask; --labels {{slices, key-images}} "
                             "need phantom masks")
        pixels.append(np.rint(item["image"][:, 0].numpy() * 255).astype(np.uint8))
        areas.append((item["mask"][:, 0].numpy()[:, None] & bits[None, :, None, None]).astype(bool).sum(axis=(2, 3)))
    return np.concatenate(pixels), np.concatenate(areas).astype(np.int32)


def key_image_targets(cache: CachedCohort, indices: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """Per slice of ``indices`` and finding, what a report citing key images tells: 1 on the slice where the
    finding's lesion is largest (the phantom's key image), 0 on every slice of a volume without the finding, NaN
    on the other slices of a volume with it."""
    truth = np.nan_to_num(cache.item_labels(indices)[:, [cache.label_space.index(f) for f in CT_FINDINGS]])
    targets = np.full(areas.shape, np.nan, dtype=np.float32)
    starts = np.concatenate([[0], np.cumsum(cache.depths[indices])])
    for k, (a, b) in enumerate(zip(starts[:-1], starts[1:], strict=True)):
        targets[a:b, truth[k] == 0] = 0.0
        for j in np.flatnonzero((truth[k] == 1) & (areas[a:b].max(axis=0) > 0)):
            targets[a + int(areas[a:b, j].argmax()), j] = 1.0
    return targets


def save_lookalikes(path: Path, slices: np.ndarray, scores: np.ndarray, starts: np.ndarray, truth: np.ndarray) -> None:
    """A PNG: per focal finding (a row), the best slices of the 8 highest-scoring test volumes without it."""
    from PIL import Image

    rows = []
    for name in FOCAL_CT_FINDINGS:
        j = CT_FINDINGS.index(name)
        best = [a + int(scores[a:b, j].argmax()) for a, b in zip(starts[:-1], starts[1:], strict=True)]
        normal = np.flatnonzero(truth[:, j] == 0)
        top = normal[np.argsort(-scores[[best[k] for k in normal], j])][:8]
        rows.append(np.concatenate([slices[best[k]] for k in top], axis=1))
    grid = np.concatenate(rows, axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)


def run_slices(cache: CachedCohort, steps: int, seed: int, figure: Path | None = None, labels: str = "slices"
               ) -> dict[str, dict[str, float]]:
    """Train the encoder and a linear head on single slices with their mask labels (``labels="slices"``) or with
    what key-image citations tell (``"key-images"``: :func:`key_image_targets`, half of each step's slices key
    images); return the per-slice and per-volume (best slice) test AUROC per finding (``figure``: also save
    :func:`save_lookalikes` there)."""
    torch.manual_seed(seed)
    train = np.flatnonzero((cache.splits == "train") & cache.is_volume)
    test = np.flatnonzero((cache.splits == "test") & cache.is_volume)
    x_train, areas = _slices_of(cache, train)
    x_test, test_areas = _slices_of(cache, test)
    y_test = (test_areas > 0).astype(np.float32)
    y_train = (areas > 0).astype(np.float32) if labels == "slices" else key_image_targets(cache, train, areas)
    keys = np.flatnonzero((y_train == 1).any(axis=1))
    probe = Probe("linear", cache.size)
    optimizer = torch.optim.Adam(probe.parameters(), 1e-3)
    rng = np.random.default_rng(seed)
    one = torch.ones(128, dtype=torch.long)
    for _ in range(steps):
        if labels == "slices":
            rows = rng.choice(len(x_train), 128, replace=False)
        else:
            rows = np.concatenate([rng.choice(keys, 64), rng.choice(len(x_train), 64)])
        logits = probe(torch.from_numpy(x_train[rows, None]).float() / 255.0, one)
        y = torch.from_numpy(y_train[rows])
        known = ~torch.isnan(y)
        loss = F.binary_cross_entropy_with_logits(logits[known], y[known])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    probe.eval()
    with torch.no_grad():
        scores = torch.cat([probe(torch.from_numpy(x_test[k : k + 256, None]).float() / 255.0,
                                  torch.ones(len(x_test[k : k + 256]), dtype=torch.long))
                            for k in range(0, len(x_test), 256)]).numpy()  # fmt: skip
    starts = np.concatenate([[0], np.cumsum(cache.depths[test])])
    best = np.stack([scores[a:b].max(0) for a, b in zip(starts[:-1], starts[1:], strict=True)])
    truth = np.nan_to_num(cache.item_labels(test)[:, [cache.label_space.index(f) for f in CT_FINDINGS]])
    if figure is not None:
        save_lookalikes(figure, x_test, scores, starts, truth)
    return {
        "slice": {f: round(float(roc_auc_score(y_test[:, j], scores[:, j])), 3) for j, f in enumerate(CT_FINDINGS)},
        "volume": {f: round(float(roc_auc_score(truth[:, j], best[:, j])), 3) for j, f in enumerate(CT_FINDINGS)},
    }


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True, help="a CT phantom cache (e.g. volume_seeds.py's)")
    parser.add_argument("--head", nargs="+", default=["linear", "cosine", "concept"], choices=["linear", "cosine", "concept"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--slices", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jitter", action="store_true", help="draw each training volume's slices anew each step")
    parser.add_argument("--eval-slices", type=int, default=24, help="test volumes keep at most this many slices")
    parser.add_argument("--augment", default="none", choices=["none", "light", "convirt"],
                        help="training augmentation, as the recipes' data.augment")
    parser.add_argument("--eval-split", default="test", help="split to measure on (train: how well the head fits)")
    parser.add_argument("--labels", default="volumes", choices=["volumes", "slices", "key-images"],
                        help="train on the volumes' labels (multiple-instance), on each slice's mask labels, or on "
                        "what key-image citations tell (the slice where each lesion is largest)")
    parser.add_argument("--figure", type=Path, help="with --labels slices or key-images: save the best slices of the "
                        "highest-scoring test volumes without each focal finding (its lookalikes) as a PNG")
    args = parser.parse_args(argv)
    if args.figure is not None and args.labels == "volumes":
        parser.error("--figure needs --labels slices or key-images")
    cache = CachedCohort(args.cache)
    if args.labels != "volumes":
        for read, aurocs in run_slices(cache, args.steps, args.seed, args.figure, args.labels).items():
            print(json.dumps({"labels": args.labels, "read": read, "size": cache.size, "steps": args.steps,
                              "mean": round(float(np.mean(list(aurocs.values()))), 3)} | aurocs), flush=True)  # fmt: skip
        return
    for head in args.head:
        aurocs = run(cache, head, args.steps, args.slices, args.seed, args.jitter, args.eval_slices, args.eval_split, args.augment)
        print(json.dumps({"head": head, "size": cache.size, "steps": args.steps, "jitter": args.jitter,
                          "split": args.eval_split, "augment": args.augment, "mean": round(float(np.mean(list(aurocs.values()))), 3)} | aurocs),
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
