"""Are the planted radiograph findings learnable at 128 px? A small CNN against a pixel baseline, on CPU.

    .venv/bin/python benchmarks/phantom_learnability.py --n 1500 --size 128 --epochs 9

Makes a phantom cohort, holds out every fifth patient, and trains (multi-label, binary cross-entropy) a
five-block CNN with global max pooling for ``--epochs`` epochs; prints the held-out AUROC per finding after
every epoch. The baseline, measured in the same run on the same split, is logistic regression on 200 PCA
components of 64 x 64 pixels: global findings (heart size, effusion) are linear in pixels, local ones at
random positions (nodule, consolidation, pneumothorax) are not.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from torch import nn

from medvl.data.phantom import read_index, synthesize

FINDINGS = ("Cardiomegaly", "Pleural Effusion", "Consolidation", "Lung Lesion", "Pneumothorax")


def _load(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = read_index(root)
    images = np.stack([np.asarray(Image.open(root / r["image"]), dtype=np.float32) / 255 for r in rows])
    labels = np.array([[json.loads(r["labels"])[name] for name in FINDINGS] for r in rows], dtype=np.float32)
    patients = np.array([r["patient_id"] for r in rows])
    held_out = np.isin(patients, np.unique(patients)[::5])
    return images, labels, held_out


def _aurocs(labels: np.ndarray, scores: np.ndarray) -> str:
    return " ".join(
        f"{name}={roc_auc_score(labels[:, j], scores[:, j]):.3f}" for j, name in enumerate(FINDINGS)
    )


def _baseline(images: np.ndarray, labels: np.ndarray, test: np.ndarray) -> str:
    small = np.stack(
        [np.asarray(Image.fromarray(i).resize((64, 64), Image.BILINEAR)).ravel() for i in images]
    )
    pca = PCA(200, random_state=0).fit(small[~test])
    features = pca.transform(small)
    scores = np.stack(
        [
            LogisticRegression(C=0.1, max_iter=3000)
            .fit(features[~test], labels[~test, j])
            .predict_proba(features[test])[:, 1]
            for j in range(len(FINDINGS))
        ],
        axis=1,
    )
    return _aurocs(labels[test], scores)


def _cnn() -> nn.Module:
    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)
        )

    return nn.Sequential(
        block(1, 16), block(16, 32), block(32, 64), block(64, 64), block(64, 64),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(64, len(FINDINGS)),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1500, help="radiographs (default 1500)")
    parser.add_argument("--size", type=int, default=128, help="image side (default 128)")
    parser.add_argument("--epochs", type=int, default=9, help="training epochs (default 9)")
    parser.add_argument("--seed", type=int, default=0, help="cohort and training seed (default 0)")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        synthesize(Path(tmp) / "cohort", n_2d=args.n, size=args.size, seed=args.seed, dicom_fraction=0.0)
        images, labels, test = _load(Path(tmp) / "cohort")
    print(f"{len(images)} studies, {test.sum()} held out (patient level), {args.size} px")
    print(f"baseline (PCA + logistic regression): {_baseline(images, labels, test)}", flush=True)
    x, y = torch.from_numpy(images[:, None]), torch.from_numpy(labels)
    train_x, train_y, test_t = x[~torch.from_numpy(test)], y[~torch.from_numpy(test)], torch.from_numpy(test)
    net = _cnn()
    optimiser = torch.optim.Adam(net.parameters(), 2e-3)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(train_x))
        for i in range(0, len(order), 32):
            batch = order[i : i + 32]
            loss = nn.functional.binary_cross_entropy_with_logits(net(train_x[batch]), train_y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        net.eval()
        with torch.no_grad():
            scores = torch.sigmoid(net(x[test_t])).numpy()
        print(
            f"CNN epoch {epoch + 1} ({time.perf_counter() - start:.0f} s): {_aurocs(labels[test], scores)}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
