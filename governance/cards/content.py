"""What a model card says: built from a version's lineage, its training data and its benchx results (no MLflow
calls here).

The card is short (about 150 lines at most): the promotion gate's outcome, intended and out-of-scope use, the
training data in words, one headline table per benchx run (overall rows at the largest label fraction, per-class
and few-shot rows stay in the linked ``results.csv``), subgroup gaps between distinct groups and the limitations.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

from benchx.headline import lower_is_better
from governance.cards.document import Bullets, CardDocument, Heading, Image, Paragraph, Table

INTENDED_USE = (
    "Research use: image and report embeddings for retrieval, zero-shot classification and as a starting point "
    "for fine-tuning on chest X-ray and CT studies, evaluated with benchx. Not a medical device: it has not been "
    "validated for diagnosis, triage or any clinical decision, and its outputs must be reviewed by a clinician."
)
OUT_OF_SCOPE = (
    "Diagnosis, triage, screening or any decision about a patient without a clinician's own reading.",
    "Modalities, body parts or populations absent from the training data below (the review app and medvl predict "
    "flag such inputs).",
    "Reading the zero-shot probabilities as calibrated risks unless a calibration is shipped with the model.",
)
GENERAL_LIMITATIONS = (
    "Performance is measured only on the benchx datasets listed above; other scanners, sites, populations and "
    "report styles may give different results.",
    "Contrastive image-report models inherit the biases and errors of the reports they were trained on.",
    "Attribution maps show where the model looked, not why; they are not evidence of a correct finding.",
)
_TRAINING_PARAMS = ("data.image_size", "model.name", "train.steps", "train.batch_size", "optim.lr", "world_size")
_PER_CLASS = re.compile(r"^(auroc|ap|f1|dice|iou)_(?!macro$|mean$)")
MAX_SUBGROUP_ROWS = 12


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.3f}"
    return "" if value is None else str(value)


def _when(millis: int | None) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC") if millis else "unknown"


def _ci(row: dict) -> str:
    low, high = row.get("ci_low"), row.get("ci_high")
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return "not computed"
    return f"{_fmt(float(low))} - {_fmt(float(high))}"


def build_card(lineage: dict, results: Sequence[dict], attributions: Sequence[tuple[str, str]] = (),
               training_data: dict | None = None) -> CardDocument:
    """The card of one model version.

    Args:
        lineage: from :func:`governance.lineage.model_lineage`.
        results: the full benchx results documents of the version's finished benchx runs.
        attributions: ``(path relative to the card folder, caption)`` of attribution example images.
        training_data: from :func:`governance.cards.builder.training_data` (None when the manifest is not here).
    """
    model = lineage["model"]
    doc = CardDocument(f"Model card: {model['name']} version {model['version']}")
    doc.blocks += _overview(lineage)
    doc.blocks += [Heading("Intended use"), Paragraph(INTENDED_USE), Heading("Out-of-scope use"),
                   Bullets(OUT_OF_SCOPE)]
    doc.blocks += _training_data(lineage, training_data)
    doc.blocks += _evaluation(lineage, results)
    doc.blocks += _subgroups(results)
    doc.blocks += _limitations(lineage, results)
    if attributions:
        doc.blocks.append(Heading("Attribution examples"))
        doc.blocks += [Image(path, caption) for path, caption in attributions]
    doc.blocks += [Heading("Provenance"), Paragraph(
        f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from the MLflow store "
        f"{lineage['tracking_uri']} by medvl card; 'medvl lineage {lineage['model_uri']}' prints the full lineage.")]
    return doc


def gate_outcome(tags: dict, aliases: Sequence[str]) -> str:
    """The promotion gate's outcome from the version's tags (and its aliases), in one sentence."""
    passed = tags.get("gate.passed", "").lower()
    if passed not in ("true", "false"):
        return "not run"
    policy = (tags.get("gate.policy_sha256") or "")[:12]
    suffix = f" (policy sha256 {policy}...)" if policy else ""
    if passed == "true":
        return "passed" + (f", holds @{', @'.join(aliases)}" if aliases else "") + suffix
    try:
        reasons = json.loads(tags.get("gate.reasons") or "[]")
    except json.JSONDecodeError:
        reasons = [tags["gate.reasons"]]
    reasons = reasons if isinstance(reasons, list) else [reasons]
    return f"refused{suffix}: {'; '.join(map(str, reasons)) or 'no reason recorded'}"


def _overview(lineage: dict) -> list:
    model, run = lineage["model"], lineage.get("run") or {}
    items = [
        f"Registered model: {model['name']} version {model['version']}"
        + (f" (aliases: {', '.join(model['aliases'])})" if model["aliases"] else ""),
        f"Architecture: {run.get('params', {}).get('model.name') or run.get('tags', {}).get('medvl.model', 'unknown')}",
        f"Registered: {_when(model['created'])}; source run {model['run_id'] or 'unknown'}",
        f"Promotion gate: {gate_outcome(model['tags'], model['aliases'])}",
    ]
    return [Heading("Overview"), Bullets(tuple(items))]


def _training_data(lineage: dict, training: dict | None) -> list:
    data, run = lineage["data"], lineage.get("run") or {}
    blocks: list = [Heading("Training data")]
    if training:
        synthetic = all(s["synthetic"] for s in training["sources"])
        kind = "entirely synthetic (generated phantoms, no patient data)" if synthetic else (
            "partly synthetic" if any(s["synthetic"] for s in training["sources"]) else "real patient studies")
        blocks.append(Paragraph(f"{training['studies']} studies from {len(training['sources'])} source(s), "
                                f"{kind}, split by patient into train / val / test."))
        blocks.append(Bullets(tuple(f"{s['name']}: {s['description']}; {'synthetic' if s['synthetic'] else 'real'}; "
                                    f"licence: {s['licence']}" for s in training["sources"])))
        blocks.append(Table(("source", "split", "modality", "studies"),
                            tuple((r["source"], r["split"], r["modality"], str(r["studies"])) for r in training["counts"])))
    else:
        blocks.append(Paragraph(f"The manifest {data.get('manifest') or '(unknown)'} is not readable here: its "
                                "sources and counts cannot be described; the hashes below identify it."))
    params = run.get("params", {})
    items = [f"Manifest hash: {data.get('manifest_hash') or 'unknown'}",
             f"Cache key: {data.get('cache_key') or 'unknown'}"]
    items += [f"Split '{split}' (study ids) hash: {digest}" for split, digest in sorted((data.get("split_hashes") or {}).items())]
    training_items = [f"{name} {params[name]}" for name in _TRAINING_PARAMS if params.get(name)]
    if data.get("steps") is not None:
        training_items.append(f"{data['steps']} optimizer steps")
    items.append("Training: " + (", ".join(training_items) or "parameters not recorded"))
    items.append(f"Code version: {run.get('code_version') or 'unknown'}")
    return blocks + [Bullets(tuple(items))]


def _headline(doc: dict) -> list[dict]:
    """Overall rows at each task's largest fraction, without per-class metrics."""
    overall = [r for r in doc["results"] if not r.get("group") and not _PER_CLASS.match(r["metric"])]
    largest: dict[tuple[str, str], float] = {}
    for r in overall:
        largest[(r["dataset"], r["task"])] = max(float(r["fraction"]), largest.get((r["dataset"], r["task"]), 0.0))
    return sorted((r for r in overall if float(r["fraction"]) == largest[(r["dataset"], r["task"])]),
                  key=lambda r: (r["dataset"], r["task"], r["metric"]))


def _seeds_vary(rows: Sequence[dict]) -> bool:
    """True when some row's per-seed values differ (else a spread would only repeat a deterministic run)."""
    return any(len({round(v, 9) for v in r.get("per_seed") or [] if isinstance(v, int | float)}) > 1 for r in rows)


def _evaluation(lineage: dict, results: Sequence[dict]) -> list:
    blocks: list = [Heading("Evaluation (benchx)")]
    unfinished = [e for e in lineage.get("benchx", []) if e["summary"] is None]
    if unfinished:
        blocks.append(Bullets(tuple(f"benchx run {e['run_id']} (suite {e['suite']}) ended {e['status']} before it "
                                    "wrote results; it is not used here." for e in unfinished)))
    if not results:
        return blocks + [Paragraph("No benchx results are recorded for this version.")]
    for doc in results:
        protocol, covered = doc.get("protocol", {}), doc.get("completeness") or {}
        scope = ("covers the suite's whole protocol" if covered.get("complete") is True else
                 "is PARTIAL (no gate accepts it): missing " + "; ".join(covered.get("missing") or ["unknown"]))
        rows = _headline(doc)
        spread = _seeds_vary(rows)
        blocks.append(Paragraph(
            f"Suite {doc.get('suite', '?')}, benchx run {doc.get('mlflow_run_id') or '?'}: seeds "
            f"{protocol.get('seeds', '?')}, label fractions {protocol.get('fractions', '?')}, 95% CIs from "
            f"{protocol.get('bootstrap', '?')} bootstrap resamples of the test set. The run {scope}. Headline metrics "
            "at the largest fraction below; per-class and few-shot rows are in the run's results.csv artifact"
            + ("." if spread else "; the seeds do not change these results, so no seed spread is shown.")))
        header = ("dataset", "task", "metric", "mean", *(("std over seeds",) if spread else ()), "95% CI", "n test")
        blocks.append(Table(header, tuple(
            (r["dataset"], r["task"], r["metric"], _fmt(r.get("mean")), *((_fmt(r.get("std")),) if spread else ()),
             _ci(r), _fmt(r.get("n_test"))) for r in rows)))
        if doc.get("failures"):
            blocks.append(Bullets(tuple(f"failed: {f.get('dataset')} {f.get('task')} fraction {f.get('fraction')} "
                                        f"seed {f.get('seed')}: {f.get('error')}" for f in doc["failures"])))
    return blocks


def subgroup_gaps(results: Sequence[dict]) -> list[tuple[tuple, float, str, str]]:
    """Per (dataset, task, metric, fraction, group): the gap between the best and the worst of two or more
    distinct subgroups, with their names; largest gap first."""
    means: dict[tuple, dict[str, float]] = defaultdict(dict)
    for doc in results:
        for r in doc["results"]:
            if r.get("group") and isinstance(r.get("mean"), int | float) and not math.isnan(r["mean"]):
                key = (r["dataset"], r["task"], r["metric"], float(r["fraction"]), r["group"])
                means[key][str(r["group_value"])] = float(r["mean"])
    gaps = []
    for key, values in means.items():
        ranked = sorted(values.items(), key=lambda item: (item[1], item[0]))
        if len(ranked) >= 2:
            (first, low), (last, high) = ranked[0], ranked[-1]
            best, worst = (first, last) if lower_is_better(key[2]) else (last, first)
            gaps.append((key, high - low, best, worst))
    return sorted(gaps, key=lambda g: -g[1])


def _subgroups(results: Sequence[dict]) -> list:
    headline = {(r["dataset"], r["task"], r["metric"], float(r["fraction"])) for doc in results for r in _headline(doc)}
    gaps = [g for g in subgroup_gaps(results) if g[0][:4] in headline]
    blocks: list = [Heading("Subgroup performance")]
    if not gaps:
        return blocks + [Paragraph("No subgroup results (sex, age band, view) with two or more groups are recorded "
                                   "for this version.")]
    rows = tuple((dataset, task, metric, group, f"{best} vs {worst}", f"{gap:.3f}")
                 for (dataset, task, metric, _, group), gap, best, worst in gaps[:MAX_SUBGROUP_ROWS])
    blocks.append(Table(("dataset", "task", "metric", "group", "best vs worst", "gap"), rows))
    if len(gaps) > MAX_SUBGROUP_ROWS:
        blocks.append(Paragraph(f"{len(gaps) - MAX_SUBGROUP_ROWS} smaller gaps are in the runs' results.csv."))
    return blocks


def _limitations(lineage: dict, results: Sequence[dict]) -> list:
    items = list(GENERAL_LIMITATIONS)
    gaps = subgroup_gaps(results)
    if gaps:
        (dataset, task, metric, fraction, group), gap, best, worst = gaps[0]
        items.append(f"Largest subgroup gap: {metric} of {task} on {dataset} differs by {gap:.3f} between "
                     f"{group} {best} and {worst}.")
    failures = sum(len(doc.get("failures", [])) for doc in results)
    if failures:
        items.append(f"{failures} benchx evaluation run(s) failed; their tasks are not fully measured.")
    items += [f"Lineage incomplete: {item} is missing." for item in lineage.get("missing", [])]
    items += [f"Lineage conflict: {item}." for item in lineage.get("conflicts", [])]
    return [Heading("Limitations"), Bullets(tuple(items))]
