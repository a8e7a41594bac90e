"""Label spaces of the phantom cohort, ground truth from planted findings, and the bit-coded lesion masks.

Every phantom knows all findings of its label space, so ground truth is 1 (planted) or 0 (not planted),
never unknown. Parent observations follow the CheXpert hierarchy: a consolidation or a lung lesion is also a
``Lung Opacity``, cardiomegaly also enlarges the cardiomediastinal silhouette (``Enlarged
Cardiomediastinum``). ``No Finding`` is 1 only for studies with nothing planted.

Masks store one bit per finding (:data:`MASK_BITS`) in a ``uint8`` image or volume, so overlapping findings
(an effusion under a consolidation) keep separate masks: ``mask & MASK_BITS[name]`` is that finding's mask.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from medvl.text.labels import CHEXPERT_14

CHEXPERT_OBSERVATIONS: tuple[str, ...] = CHEXPERT_14
LIVER_LESION = "Liver Lesion"

LABELS_2D: tuple[str, ...] = CHEXPERT_OBSERVATIONS
LABELS_3D: tuple[str, ...] = (*CHEXPERT_OBSERVATIONS, LIVER_LESION)

MASK_BITS: dict[str, int] = {
    "Cardiomegaly": 1,
    "Pleural Effusion": 2,
    "Consolidation": 4,
    "Lung Lesion": 8,
    "Pneumothorax": 16,
    LIVER_LESION: 32,
}

_PARENTS: dict[str, tuple[str, ...]] = {
    "Consolidation": ("Lung Opacity",),
    "Lung Lesion": ("Lung Opacity",),
    "Cardiomegaly": ("Enlarged Cardiomediastinum",),
}


def ground_truth(planted: Iterable[str], label_space: tuple[str, ...]) -> dict[str, int]:
    """Labels ``{observation: 1 | 0}`` over ``label_space`` for the planted finding names.

    Raises:
        ValueError: a planted name is not an observation of ``label_space``.
    """
    positive = set(planted)
    unknown = positive - set(label_space)
    if unknown:
        raise ValueError(f"planted finding(s) {sorted(unknown)} are not in the label space {label_space}")
    for name in list(positive):
        positive.update(_PARENTS.get(name, ()))
    labels = {name: int(name in positive) for name in label_space}
    labels["No Finding"] = int(not positive)
    return labels


def decode_mask(mask: np.ndarray) -> dict[str, np.ndarray]:
    """Split a bit-coded mask into one boolean array per finding (all findings of :data:`MASK_BITS`)."""
    mask = np.asarray(mask)
    if mask.dtype.kind not in "ui":
        raise ValueError(f"a phantom mask holds integer bit codes, got dtype {mask.dtype}")
    return {name: (mask & bit) > 0 for name, bit in MASK_BITS.items()}
