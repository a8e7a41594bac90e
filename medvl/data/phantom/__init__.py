"""The synthetic phantom cohort: chest radiographs and CTs with planted findings, exact masks and reports.

``synthesize(out_dir, n_2d=..., n_3d=..., seed=...)`` writes a cohort folder (see :mod:`.cohort` for the
layout) and returns its index; :func:`read_index` reads it back and :func:`read_mask` splits a study's
bit-coded mask into per-finding masks. The ``phantom`` source adapter turns a cohort into manifest rows.
"""

from medvl.data.phantom.cohort import GENERATOR_VERSION, CohortSpec, PhantomError, read_index, synthesize
from medvl.data.phantom.files import read_mask
from medvl.data.phantom.labels import (
    ASCITES,
    KIDNEY_CYST,
    LABELS_2D,
    LABELS_3D,
    LIVER_LESION,
    LYMPHADENOPATHY,
    MASK_BITS,
    MASK_BITS_2D,
    MASK_BITS_3D,
    MASK_BITS_BY_KIND,
    decode_mask,
    ground_truth,
)

__all__ = [
    "ASCITES",
    "GENERATOR_VERSION",
    "KIDNEY_CYST",
    "LABELS_2D",
    "LABELS_3D",
    "LIVER_LESION",
    "LYMPHADENOPATHY",
    "MASK_BITS",
    "MASK_BITS_2D",
    "MASK_BITS_3D",
    "MASK_BITS_BY_KIND",
    "CohortSpec",
    "PhantomError",
    "decode_mask",
    "ground_truth",
    "read_index",
    "read_mask",
    "synthesize",
]
