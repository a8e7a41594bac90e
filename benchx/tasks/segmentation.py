"""Segmentation: a small U-Net-style decoder on the frozen encoder's multi-scale feature maps.

The decoder projects each map to a common width, fuses them top-down (upsample the coarser, add the finer,
3x3 conv) and predicts one sigmoid channel per card class. It is trained at the resolution of the finest feature map
against area-downsampled (soft) masks, which is 10-20x cheaper than at image resolution, and predicts at image
resolution (logits upsampled) for scoring. Volumes are segmented slice by slice (up to :data:`MAX_SLICES` evenly
spaced slices each) and scored per volume. Per case and class:
Dice ``2|P∩G| / (|P|+|G|)`` and IoU ``|P∩G| / |P∪G|``, left out when both are empty; a case's value is the
mean over its classes. The learning rate is chosen on val Dice.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from torch import nn

from benchx.cards import SegmentationSpec
from benchx.errors import BenchxError
from benchx.features import batches
from benchx.fractions import few_shot_indices
from benchx.stats import MeanOf
from benchx.tasks.base import TaskContext, TaskOutcome

MAX_SLICES = 6
WIDTH = 32
LR_GRID = (5e-3, 1.5e-2)
EPOCHS = 30
MAX_STEPS = 300
BATCH = 32


class PyramidDecoder(nn.Module):
    """Top-down fusion of feature maps (finest first) into per-class logits."""

    def __init__(self, channels: list[int], n_classes: int, width: int = WIDTH) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.fuse = nn.ModuleList(nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU()) for _ in channels)
        self.out = nn.Conv2d(width, n_classes, 1)

    def forward(self, maps: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        x = self.fuse[-1](self.lateral[-1](maps[-1]))
        for i in range(len(maps) - 2, -1, -1):
            x = F.interpolate(x, size=maps[i].shape[-2:], mode="bilinear", align_corners=False)
            x = self.fuse[i](x + self.lateral[i](maps[i]))
        return F.interpolate(self.out(x), size=size, mode="bilinear", align_corners=False)


def mask_targets(mask: torch.Tensor, spec: SegmentationSpec) -> torch.Tensor:
    """``(N, H, W)`` uint8 masks -> ``(N, C, H, W)`` float targets of the card's classes."""
    mask = mask.long()
    planes = [(mask & code) > 0 if spec.encoding == "bits" else mask == code for code in spec.classes.values()]
    return torch.stack(planes, dim=1).float()


def slice_items(batch: dict) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """2D slices ``(M, 1, H, W)``, their masks ``(M, H, W)`` and item positions in the batch, for items with masks."""
    if "mask" not in batch:
        return batch["image"][:0, :1].reshape(0, 1, *batch["image"].shape[-2:]), torch.zeros(0), np.zeros(0, int)
    has_mask = batch["has_mask"]
    if batch["image"].ndim == 4:
        keep = has_mask.nonzero()[:, 0]
        return batch["image"][keep], batch["mask"][keep, 0], keep.numpy()
    images, masks, owners = [], [], []
    for b in has_mask.nonzero()[:, 0].tolist():
        depth = int((~batch["key_padding_mask"][b]).sum())
        chosen = np.unique(np.linspace(0, depth - 1, min(MAX_SLICES, depth)).round().astype(int))
        images.append(batch["image"][b, chosen])
        masks.append(batch["mask"][b, chosen, 0])
        owners.extend([b] * len(chosen))
    if not images:
        return batch["image"].new_zeros(0, 1, *batch["image"].shape[-2:]), torch.zeros(0), np.zeros(0, int)
    return torch.cat(images), torch.cat(masks), np.asarray(owners)


class SegmentationData:
    """Frozen feature maps, targets and case ids of one split's masked slices."""

    def __init__(self, ctx: TaskContext, split: str, spec: SegmentationSpec) -> None:
        maps, targets, owners, offset = [], [], [], 0
        with torch.no_grad():
            for batch in batches(ctx.cohort(split)):
                images, masks, owner = slice_items(batch)
                if len(images):
                    maps.append([m.float() for m in ctx.adapter.feature_maps(images)])
                    targets.append(mask_targets(masks, spec))
                    owners.append(owner + offset)
                offset += len(batch["study_id"])
        if not maps:
            raise BenchxError(f"dataset '{ctx.dataset.card.name}': no {split} item has a mask")
        self.maps = [torch.cat(level) for level in zip(*maps, strict=True)]
        self.targets = torch.cat(targets)
        self.coarse_targets = F.adaptive_avg_pool2d(self.targets, self.maps[0].shape[-2:])
        self.owner = np.concatenate(owners)
        ids = ctx.study_ids(split)
        self.case_ids = [ids[i] for i in np.unique(self.owner)]

    def subset(self, items: np.ndarray) -> np.ndarray:
        """Slice positions belonging to the given item indices."""
        return np.flatnonzero(np.isin(self.owner, items))


def split_data(ctx: TaskContext, split: str, spec: SegmentationSpec) -> SegmentationData:
    """A split's :class:`SegmentationData`, computed once per dataset and model (every fraction and seed reuses
    the frozen feature maps)."""
    key = ("segmentation", split)
    if key not in ctx.memo:
        ctx.memo[key] = SegmentationData(ctx, split, spec)
    return ctx.memo[key]


def train_decoder(data: SegmentationData, rows: np.ndarray, lr: float, seed: int) -> PyramidDecoder:
    """Train a decoder on the given slices (BCE + soft Dice against the coarse masks, Adam)."""
    torch.manual_seed(seed)
    decoder = PyramidDecoder([m.shape[1] for m in data.maps], data.targets.shape[1])
    # 1 - soft Dice per class over the whole batch, averaged over classes (small lesions weigh as much as the
    # background-only slices would otherwise outweigh them)
    soft_dice = DiceLoss(sigmoid=True, batch=True, smooth_nr=1.0, smooth_dr=1.0)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
    size = tuple(data.coarse_targets.shape[-2:])
    generator = torch.Generator().manual_seed(seed)
    steps = min(MAX_STEPS, EPOCHS * -(-len(rows) // BATCH))  # large training sets: a capped number of steps
    step = 0
    while step < steps:
        order = torch.from_numpy(rows)[torch.randperm(len(rows), generator=generator)]
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            logits = decoder([m[idx] for m in data.maps], size)
            target = data.coarse_targets[idx]
            loss = F.binary_cross_entropy_with_logits(logits, target) + soft_dice(logits, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step == steps:
                break
    return decoder.eval()


@torch.no_grad()
def case_scores(decoder: PyramidDecoder, data: SegmentationData) -> tuple[np.ndarray, np.ndarray]:
    """Per case (item): Dice and IoU averaged over its classes (NaN when every class is empty in both)."""
    size = tuple(data.targets.shape[-2:])
    pred = torch.cat([decoder([m[s : s + BATCH] for m in data.maps], size) for s in range(0, len(data.targets), BATCH)]) > 0
    truth = data.targets > 0.5
    inter = (pred & truth).sum((-2, -1)).numpy().astype(float)
    total = (pred.sum((-2, -1)) + truth.sum((-2, -1))).numpy().astype(float)
    cases = np.unique(data.owner)
    per_case = np.searchsorted(cases, data.owner)
    inter_c = np.zeros((len(cases), inter.shape[1]))
    total_c = np.zeros_like(inter_c)
    np.add.at(inter_c, per_case, inter)
    np.add.at(total_c, per_case, total)
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(total_c > 0, 2 * inter_c / total_c, np.nan)
        iou = np.where(total_c > 0, inter_c / (total_c - inter_c), np.nan)
    return _nanmean_rows(dice), _nanmean_rows(iou)


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    counts = np.isfinite(values).sum(axis=1)
    return np.where(counts > 0, np.nansum(values, axis=1) / np.maximum(counts, 1), np.nan)


def segmentation(ctx: TaskContext, fraction: float, seed: int) -> TaskOutcome:
    """Decoder on frozen multi-scale features; Dice and IoU per test case."""
    spec = ctx.dataset.card.segmentation
    if spec is None:
        raise BenchxError(f"dataset '{ctx.dataset.card.name}' has no segmentation section in its card")
    train, val, test = (split_data(ctx, s, spec) for s in ("train", "val", "test"))
    masked = np.unique(train.owner)
    kept = masked[few_shot_indices(ctx.labels("train")[masked], fraction, seed, ctx.dataset.split_hash)]
    rows = train.subset(kept)
    best = None
    for lr in LR_GRID:
        decoder = train_decoder(train, rows, lr, seed)
        dice = float(np.nanmean(case_scores(decoder, val)[0]))
        if best is None or dice > best[0]:
            best = (dice, lr, decoder)
    _, lr, decoder = best
    dice, iou = case_scores(decoder, test)
    return TaskOutcome({"dice": MeanOf(dice), "iou": MeanOf(iou)}, test.case_ids, {"lr": lr, "n_train": len(kept)})
