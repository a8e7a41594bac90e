"""What a model card says: built from a version's lineage and its benchx results (no MLflow calls here)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

from governance.cards.document import Bullets, CardDocument, Heading, Image, Paragraph, Table

INTENDED_USE = (
    "Research use: image and report embeddings for retrieval, zero-shot classification and as a starting point "
    "for fine-tuning on chest X-ray and CT studies, evaluated with benchx. Not a medical device: it has not been "
    "validated for diagnosis, triage or any clinical decision, and its outputs must be reviewed by a clinician."
)
GENERAL_LIMITATIONS = (
    "Performance is measured only on the benchx datasets listed above; other scanners, sites, populations and "
    "report styles may give different results.",
    "Contrastive image-report models inherit the biases and errors of the reports they were trained on.",
    "Attribution maps show where the model looked, not why; they are not evidence of a correct finding.",
)
_TRAINING_PARAMS = ("data.manifest", "data.cache", "data.image_size", "model.name", "train.steps",
                    "train.batch_size", "train_items", "optim.lr", "world_size")


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


def build_card(lineage: dict, results: Sequence[dict], attributions: Sequence[tuple[str, str]] = ()) -> CardDocument:
    """The card of one model version.

    Args:
        lineage: from :func:`governance.lineage.model_lineage`.
        results: the full benchx results documents of the version's benchx runs.
        attributions: ``(path relative to the card folder, caption)`` of attribution example images.
    """
    model = lineage["model"]
    doc = CardDocument(f"Model card: {model['name']} version {model['version']}")
    doc.blocks += _overview(lineage)
    doc.blocks += [Heading("Intended use"), Paragraph(INTENDED_USE)]
    doc.blocks += _training_data(lineage)
    doc.blocks += _evaluation(results)
    doc.blocks += _subgroups(results)
    doc.blocks += _limitations(lineage, results)
    if attributions:
        doc.blocks.append(Heading("Attribution examples"))
        doc.blocks += [Image(path, caption) for path, caption in attributions]
    doc.blocks += [Heading("Provenance"), Paragraph(
        f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from the MLflow store "
        f"{lineage['tracking_uri']} by medvl card; 'medvl lineage {lineage['model_uri']}' prints the full lineage.")]
    return doc


def _overview(lineage: dict) -> list:
    model, run = lineage["model"], lineage.get("run") or {}
    tags = model["tags"]
    gate = {"true": "passed", "false": "refused"}.get(tags.get("gate.passed", ""), "not run")
    items = [
        f"Registered model: {model['name']} version {model['version']}"
        + (f" (aliases: {', '.join(model['aliases'])})" if model["aliases"] else ""),
        f"Architecture: {run.get('params', {}).get('model.name') or run.get('tags', {}).get('medvl.model', 'unknown')}",
        f"Registered: {_when(model['created'])}; source run {model['run_id'] or 'unknown'}",
        f"Promotion gate: {gate}",
    ]
    return [Heading("Overview"), Bullets(tuple(items))]


def _training_data(lineage: dict) -> list:
    data, run = lineage["data"], lineage.get("run") or {}
    params = run.get("params", {})
    items = [f"Manifest hash: {data.get('manifest_hash') or 'unknown'}",
             f"Cache key: {data.get('cache_key') or 'unknown'}"]
    for split, digest in sorted((data.get("split_hashes") or {}).items()):
        items.append(f"Split '{split}' (study ids) hash: {digest}")
    items += [f"{name}: {params[name]}" for name in _TRAINING_PARAMS if params.get(name)]
    if data.get("steps") is not None:
        items.append(f"Optimizer steps: {data['steps']}")
    items.append(f"Code version: {run.get('code_version') or 'unknown'}")
    return [Heading("Training data"), Bullets(tuple(items))]


def _evaluation(results: Sequence[dict]) -> list:
    blocks: list = [Heading("Evaluation (benchx)")]
    if not results:
        return blocks + [Paragraph("No benchx results are recorded for this version.")]
    for doc in results:
        protocol = doc.get("protocol", {})
        blocks.append(Paragraph(
            f"Suite {doc.get('suite', '?')}, benchx run {doc.get('mlflow_run_id') or '?'}: seeds "
            f"{protocol.get('seeds', '?')}, label fractions {protocol.get('fractions', '?')}, confidence "
            f"intervals from {protocol.get('bootstrap', '?')} bootstrap resamples of the test set."))
        rows = sorted((r for r in doc["results"] if not r.get("group")),
                      key=lambda r: (r["dataset"], r["task"], r["metric"], float(r["fraction"])))
        blocks.append(Table(
            ("dataset", "task", "fraction", "metric", "mean", "std", "CI", "n test"),
            tuple((r["dataset"], r["task"], f"{float(r['fraction']):g}", r["metric"], _fmt(r.get("mean")),
                   _fmt(r.get("std")), _ci(r), _fmt(r.get("n_test"))) for r in rows)))
        if doc.get("failures"):
            blocks.append(Bullets(tuple(f"failed: {f.get('dataset')} {f.get('task')} fraction {f.get('fraction')} "
                                        f"seed {f.get('seed')}: {f.get('error')}" for f in doc["failures"])))
    return blocks


def subgroup_gaps(results: Sequence[dict]) -> list[tuple[tuple, float, str, str]]:
    """Per (dataset, task, metric, fraction, group): the gap between the best and worst subgroup mean, with
    their names; largest gap first (groups with fewer than two finite means are left out)."""
    means: dict[tuple, dict[str, float]] = defaultdict(dict)
    for doc in results:
        for r in doc["results"]:
            if r.get("group") and isinstance(r.get("mean"), int | float) and not math.isnan(r["mean"]):
                key = (r["dataset"], r["task"], r["metric"], float(r["fraction"]), r["group"])
                means[key][str(r["group_value"])] = float(r["mean"])
    gaps = []
    for key, values in means.items():
        if len(values) >= 2:
            best, worst = max(values, key=values.get), min(values, key=values.get)
            gaps.append((key, values[best] - values[worst], best, worst))
    return sorted(gaps, key=lambda g: -g[1])


def _subgroups(results: Sequence[dict]) -> list:
    rows = sorted((r["dataset"], r["task"], f"{float(r['fraction']):g}", r["metric"], r["group"],
                    str(r["group_value"]), _fmt(r.get("mean")), _ci(r), _fmt(r.get("n_test")))
                   for doc in results for r in doc["results"] if r.get("group"))
    blocks: list = [Heading("Subgroup performance")]
    if not rows:
        return blocks + [Paragraph("No subgroup results (sex, age band, view) are recorded for this version.")]
    blocks.append(Table(("dataset", "task", "fraction", "metric", "group", "value", "mean", "CI", "n test"),
                        tuple(rows)))
    gaps = subgroup_gaps(results)
    if gaps:
        blocks.append(Bullets(tuple(f"{task} {metric} on {dataset} (fraction {fraction:g}), by {group}: gap "
                                    f"{gap:.3f} ({best} vs {worst})"
                                    for (dataset, task, metric, fraction, group), gap, best, worst in gaps)))
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
