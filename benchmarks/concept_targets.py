"""How right are the patch-concept term's targets? Concept targets read from CT phantom reports against the truth.

    .venv/bin/python benchmarks/concept_targets.py --cache volume-seeds/cache

For each finding of the phantom CTs, the training split's concept targets (what
:meth:`medvl.text.concepts.ConceptVocabulary.targets` reads from each report) are compared with the planted
ground truth: the share of true positives whose target is 1 (asserted), NaN (hedged: left out of the loss) or 0
(trained as absent, a wrong label), and the share of true negatives whose target is 1. Twice: with the lexicon
alone, and with the CT labeller's patterns as well (how ``medvl pretrain`` reads them), plus the share of
positives whose report cites a key image.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from medvl.data.cache import CachedCohort
from medvl.data.phantom.findings import CT_FINDINGS
from medvl.text.concepts import ConceptVocabulary
from medvl.text.labeller import Labeller
from medvl.text.labels import LabelSpace


def agreement(vocabulary: ConceptVocabulary, reports: list[str], truth: np.ndarray) -> dict[str, dict[str, float]]:
    """Per finding (``truth`` columns in CT_FINDINGS order): shares of positives with target 1 / NaN / 0, of
    negatives with target 1, and of positives with a cited key image."""
    targets, keys = vocabulary.targets(reports).numpy(), vocabulary.key_images(reports).numpy()
    rows = {}
    for j, finding in enumerate(CT_FINDINGS):
        concept = vocabulary.for_observation(finding)
        if concept is None:
            continue
        t, k, positive = targets[:, vocabulary.names.index(concept)], keys[:, vocabulary.names.index(concept)], truth[:, j] == 1
        rows[finding] = {"positives": int(positive.sum()), "target_1": round(float((t[positive] == 1).mean()), 3),
                         "target_nan": round(float(np.isnan(t[positive]).mean()), 3),
                         "target_0": round(float((t[positive] == 0).mean()), 3),
                         "negatives_target_1": round(float((t[~positive] == 1).mean()), 3),
                         "key_image": round(float((k[positive] > 0).mean()), 3)}  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True, help="a CT phantom cache")
    parser.add_argument("--split", default="train")
    args = parser.parse_args(argv)
    cache = CachedCohort(args.cache)
    items = np.flatnonzero((cache.splits == args.split) & cache.is_volume)
    reports = [cache.text("report", int(i)) for i in items]
    truth = np.nan_to_num(cache.item_labels(items)[:, [cache.label_space.index(f) for f in CT_FINDINGS]])
    for name, labeller in (("lexicon", None), ("lexicon + labeller", Labeller(LabelSpace.chest_abdomen_ct()))):
        vocabulary = ConceptVocabulary.from_reports(reports[:2000], categories=["finding"], labeller=labeller)
        for finding, row in agreement(vocabulary, reports, truth).items():
            print(json.dumps({"targets": name, "finding": finding} | row))


if __name__ == "__main__":
    main()
