"""Do the heatmaps point at the lesion? Pointing game and deletion test on phantoms with known lesion masks.

Uses the session's pretrained phantom model (``trained_phantom_model``, the phantom-tiny recipe with its
patch-concept term) and its cache, whose masks are aligned with the model input. The heatmap is the app's: the
similarity of each region (dense grid) with the finding's trained concept. Floor (docs/app.md): pointing-game
accuracy above the chance rate of a random point (measured 0.16-0.46 against 0.09 on six models of the previous
engine, 0.22-0.27 on three of the current one). The deletion test (deleting the top-attributed region lowers the
finding's region score more, on average, than deleting the same region moved to a random place) held on all six
earlier models but is marginal on the current engine's (margins 0.234, 0.009 and -0.0015 over three runs): a
known gap, measured and reported here, not asserted (docs/app.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medvl.infer.faithfulness import FINDINGS_2D, Faithfulness, measure
from medvl.infer.loading import read_concepts
from medvl.text.concepts import ConceptVocabulary
from medvl.text.lexicon import Lexicon


@pytest.fixture(scope="module")
def faithfulness(trained_phantom_model) -> Faithfulness:
    """Both checks on every lesion-bearing test study of the session's model (printed)."""
    trained = ConceptVocabulary(read_concepts(trained_phantom_model.model_dir), Lexicon.default())
    assert all(trained.for_observation(f) for f in FINDINGS_2D), "the export did not save the trained concepts"
    torch.manual_seed(0)
    result = measure(trained_phantom_model.model_dir, trained_phantom_model.cache_dir)
    assert len(result.hits) >= 100, "too few lesion-bearing test studies for the checks"
    print(
        f"pointing game {result.pointing:.3f} (chance {result.chance_rate:.3f}) over {len(result.hits)} studies; mean "
        f"drop top {np.mean(result.drop_top):.4f}, random {np.mean(result.drop_random):.4f}"
    )
    return result


def test_heatmaps_point_at_lesions(faithfulness):
    assert faithfulness.pointing > faithfulness.chance_rate, (
        f"pointing game {faithfulness.pointing:.3f} no better than a random point ({faithfulness.chance_rate:.3f})"
    )


@pytest.mark.xfail(reason="known gap: marginal on the current engine's models (docs/app.md)", strict=False)
def test_deleting_the_top_region_lowers_the_score_more_than_a_random_one(faithfulness):
    top, random = np.mean(faithfulness.drop_top), np.mean(faithfulness.drop_random)
    assert top > random, f"deleting the top region drops {top:.3f}, a random one {random:.3f}"
