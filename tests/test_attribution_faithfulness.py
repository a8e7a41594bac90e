"""Do the heatmaps point at the lesion? Pointing game and deletion test on phantoms with known lesion masks.

Uses the session's pretrained phantom model (``trained_phantom_model``, the phantom-tiny recipe with its
patch-concept term) and its cache, whose masks are aligned with the model input. The heatmap is the app's: the
similarity of each region (dense grid) with the finding's trained concept. Floors (docs/app.md): pointing-game
accuracy above the chance rate of a random point (measured 0.16-0.46 against 0.09 on six trained models);
deleting the top-attributed region lowers the finding's region score more, on average, than deleting the same
region moved to a random place.
"""

from __future__ import annotations

import numpy as np
import torch

from medvl.infer.faithfulness import FINDINGS_2D, measure
from medvl.infer.loading import read_concepts
from medvl.text.lexicon import Lexicon
from medvl.train.concepts import ConceptVocabulary


def test_heatmaps_point_at_lesions_and_deleting_them_lowers_the_score(trained_phantom_model):
    trained = ConceptVocabulary(read_concepts(trained_phantom_model.model_dir), Lexicon.default())
    assert all(trained.for_observation(f) for f in FINDINGS_2D), "the export did not save the trained concepts"
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
