"""Do the heatmaps point at the lesion? Pointing game and deletion test on phantoms with known lesion masks.

Uses the session's pretrained phantom model (``trained_phantom_model``) and its cache, whose masks are aligned
with the model input. Floors (docs/app.md): pointing-game accuracy above the chance rate of a random point;
deleting the top-attributed region lowers the finding's probability more, on average, than
deleting the same region moved to a random place. Marked as an expected failure (not strict) until the pointing
game holds in every run: it runs and prints its figures, it does not gate CI.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medvl.infer.faithfulness import measure


@pytest.mark.xfail(
    reason="known gap: the pointing game is not reliably above chance: 0.169-0.290 over 4 seeds of the recipe, "
    "0.035 on one CI-trained model (chance 0.090); docs/app.md",
    strict=False,
)
def test_heatmaps_point_at_lesions_and_deleting_them_lowers_the_score(trained_phantom_model):
    torch.manual_seed(0)
    result = measure(trained_phantom_model.model_dir, trained_phantom_model.cache_dir)
    assert len(result.hits) >= 100, "too few lesion-bearing test studies for the checks"
    chance = result.chance_rate
    print(
        f"pointing game {result.pointing:.3f} (chance {chance:.3f}) over {len(result.hits)} studies; mean drop "
        f"top {np.mean(result.drop_top):.4f}, random {np.mean(result.drop_random):.4f}"
    )
    assert result.pointing > chance, (
        f"pointing game {result.pointing:.3f} no better than a random point ({chance:.3f})"
    )
    assert np.mean(result.drop_top) > np.mean(result.drop_random), (
        f"deleting the top region drops {np.mean(result.drop_top):.3f}, a random one {np.mean(result.drop_random):.3f}"
    )
