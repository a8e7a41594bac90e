"""Label spaces of the phantom cohort, ground truth from planted findings, and the bit-coded lesion masks.

Every phantom knows all findings of its label space, so ground truth is 1 (planted) or 0 (not planted),
never unknown. Parent observations follow the CheXpert hierarchy: a consolidation or a lung lesion is also a
``Lung Opacity``, cardiomegaly also enlarges the cardiomediastinal silhouette (``Enlarged
Cardiomediastinum``). ``No Finding`` is 1 only for studies with nothing planted. CTs add the chest/abdomen
observations of :data:`medvl.text.labels.CT_OBSERVATIONS` (liver lesion, kidney cyst, ascites,
lymphadenopathy) to CheXpert's 14.

Masks store one bit per finding in a ``uint8`` image (radiographs, :data:`MASK_BITS_2D`) or volume (CTs,
:data:`MASK_BITS_3D`), so overlapping findings (an effusion under a consolidation) keep separate masks:
``mask & bits[name]`` is that finding's mask. Eight bits do not hold the nine findings of both kinds, so a
bit is unique within a kind only: 16 is ``Pneumothorax`` (never planted on CT) in a radiograph mask and
``Lymphadenopathy`` (never planted on radiographs) in a CT mask. :func:`decode_mask` therefore takes the
kind; the bits that both kinds use (effusion 2, lung lesion 8) and the CT findings' other bits (32, 64, 128)
mean the same everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from medvl.text.labels import CHEXPERT_14, CT_OBSERVATIONS

CHEXPERT_OBSERVATIONS: tuple[str, ...] = CHEXPERT_14
LIVER_LESION, KIDNEY_CYST, ASCITES, LYMPHADENOPATHY = CT_OBSERVATIONS

LABELS_2D: tuple[str, ...] = CHEXPERT_OBSERVATIONS
LABELS_3D: tuple[str, ...] = (*CHEXPERT_OBSERVATIONS, *CT_OBSERVATIONS)

MASK_BITS_2D: dict[str, int] = {
    "Cardiomegaly": 1,
    "Pleural Effusion": 2,
    "Consolidation": 4,
    "Lung Lesion": 8,
    "Pneumothorax": 16,
}
MASK_BITS_3D: dict[str, int] = {
    "Pleural Effusion": 2,
    "Lung Lesion": 8,
    LYMPHADENOPATHY: 16,
    LIVER_LESION: 32,
    KIDNEY_CYST: 64,
    ASCITES: 128,
}
MASK_BITS_BY_KIND: dict[str, dict[str, int]] = {"2d": MASK_BITS_2D, "3d": MASK_BITS_3D}
# Every finding's bit (within its kind's masks); 16 appears twice, see the module docstring.
MASK_BITS: dict[str, int] = {**MASK_BITS_2D, **MASK_BITS_3D}

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


def decode_mask(mask: np.ndarray, kind: str) -> dict[str, np.ndarray]:
    """Split a bit-coded mask of a ``2d`` (radiograph) or ``3d`` (CT) study into one boolean array per finding
    of that kind (all of :data:`MASK_BITS_2D` or :data:`MASK_BITS_3D`).

    Raises:
        ValueError: an unknown kind or a mask that does not hold integers.
    """
    if kind not in MASK_BITS_BY_KIND:
        raise ValueError(f"mask kind must be one of {sorted(MASK_BITS_BY_KIND)}, got {kind!r}")
    mask = np.asarray(mask)
    if mask.dtype.kind not in "ui":
        raise ValueError(f"a phantom mask holds integer bit codes, got dtype {mask.dtype}")
    return {name: (mask & bit) > 0 for name, bit in MASK_BITS_BY_KIND[kind].items()}
