"""Benchmark: IU X-ray reports labelled per second on one core, medvl's labeller vs two naive baselines.

- "keyword loop": the 20-line keyword matcher with a crude negation rule: per sentence, one regex search per
  class keyword list, negated when ``no``/``without``/``not`` appears earlier in the sentence.
- "naive vocabulary loop": the same vocabulary as medvl's label space and the same cue words, applied the naive
  way: per sentence, one ``re.search`` per synonym and per cue (patterns built from strings on every call,
  relying on ``re``'s cache), i.e. what the labeller would cost without its word index and precompiled
  alternations.

All run on the same FINDINGS + IMPRESSION texts, interleaved, several times, pinned to one core; the medians of
the CPU time of the process (``time.process_time``, robust to other jobs on a shared machine, unlike wall time)
are reported with the macro-F1 of each against the IU MeSH reference (uncertain counted as positive; see
docs/labeller.md).

    python benchmarks/bench_labeller.py [--repeats 5] [--archive PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time
from pathlib import Path

from medvl.realdata import realdata_root
from medvl.text.iu_eval import evaluable, macro_f1, score
from medvl.text.iu_xray import read_iu_reports
from medvl.text.labeller import Labeller
from medvl.text.labels import LabelSpace
from medvl.text.sentences import split_sentences

BASELINE_KEYWORDS = {
    "Cardiomegaly": r"cardiomegaly|enlarged heart|heart is enlarged",
    "Pleural Effusion": r"effusion",
    "Pneumothorax": r"pneumothorax",
    "Atelectasis": r"atelectasis|atelectatic",
    "Lung Opacity": r"opacit|consolidation|infiltrate|airspace disease|pneumonia",
    "Edema": r"edema|congestion|heart failure",
    "Lung Lesion": r"nodule|mass",
    "Pneumonia": r"pneumonia",
    "Fracture": r"fracture",
}
_NEGATION = re.compile(r"\b(?:no|not|without|negative for)\b", re.IGNORECASE)


def baseline_label(text: str) -> dict[str, int]:
    """The naive per-sentence keyword loop (with the old-style regex compiled per call)."""
    labels: dict[str, int] = {}
    for sentence in split_sentences(text):
        for name, keywords in BASELINE_KEYWORDS.items():
            match = re.search(keywords, sentence, re.IGNORECASE)
            if match:
                negated = _NEGATION.search(sentence[: match.start()]) is not None
                labels[name] = max(labels.get(name, 0), 0 if negated else 1)
    if not any(v == 1 for v in labels.values()):
        labels["No Finding"] = 1
    return labels


def naive_vocabulary_labeller():
    """Per sentence: one regex search per synonym of the default label space, negation/uncertainty by cue words."""
    space = LabelSpace.default()
    synonyms = [(obs.name, rf"\b{re.escape(s.rstrip('*'))}\w*") for obs in space for s in obs.synonyms]
    negations = [rf"\b{w}\b" for w in ("no", "not", "without", "free of", "negative for", "no evidence of")]
    uncertain = [rf"\b{w}\b" for w in ("may", "possible", "possibly", "likely", "cannot exclude", "versus")]

    def label(text: str) -> dict[str, int]:
        labels: dict[str, int] = {}
        for sentence in split_sentences(text):
            for name, pattern in synonyms:
                match = re.search(pattern, sentence, re.IGNORECASE)
                if match is None:
                    continue
                before = sentence[: match.start()]
                if any(re.search(p, before, re.IGNORECASE) for p in negations):
                    status = 0
                elif any(re.search(p, sentence, re.IGNORECASE) for p in uncertain):
                    status = -1
                else:
                    status = 1
                labels[name] = max(labels.get(name, status), status)
        if not any(v in (1, -1) for k, v in labels.items() if k != "Support Devices"):
            labels["No Finding"] = 1
        return labels

    return label


def _time(function, texts: list[str]) -> float:
    start = time.process_time()
    for text in texts:
        function(text)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--archive", type=Path)
    args = parser.parse_args()
    archive = args.archive or (realdata_root() or Path("../shared/data")) / "iu_reports" / "NLMCXR_reports.tgz"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    reports = evaluable(read_iu_reports(archive))
    texts = [r.findings_impression for r in reports]
    contenders = {
        "medvl Labeller": Labeller().label,
        "baseline: keyword loop": baseline_label,
        "baseline: naive vocabulary loop": naive_vocabulary_labeller(),
    }
    for function in contenders.values():
        function(texts[0])  # warm-up
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, function in contenders.items():
            times[name].append(_time(function, texts))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, pinned to 1 core; "
          f"Python {platform.python_version()}")
    print(f"reports: {len(texts)} (IU X-ray FINDINGS + IMPRESSION), repeats: {args.repeats} (median)")
    print("| labeller | median CPU time (s) | reports / s | macro-F1 (uncertain = positive) |")
    print("|---|---:|---:|---:|")
    for name, function in contenders.items():
        median = statistics.median(times[name])
        f1 = macro_f1(score(reports, [function(t) for t in texts]))
        print(f"| {name} | {median:.2f} | {len(texts) / median:.0f} | {f1:.3f} |")


if __name__ == "__main__":
    main()
