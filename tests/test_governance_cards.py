"""Model cards (governance.cards, medvl card): content from MLflow, Markdown + HTML, attached to the version;
the gate's outcome, training data in words, headline tables, distinct subgroups, interrupted runs, length."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from PIL import Image

from governance.cards import CardError, write_model_card
from medvl.cli import main
from tests.governance_support import (
    MANIFEST_HASH,
    log_benchx_run,
    register_model,
    results_doc,
    save_tiny_model,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """'card' v1 with a benchx run (one failed run, an escaped dataset name) and v2 without any."""
    root = tmp_path_factory.mktemp("cards")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    model_dir = save_tiny_model(root / "model")
    v1, run1 = register_model(uri, "card", model_dir)
    results = results_doc("card", v1, failures=[{"dataset": "phantom-2d", "task": "zero_shot", "fraction": 1.0,
                                                 "seed": 0, "error": "no prompts"}])
    results["results"][2]["dataset"] = "x<script>"
    log_benchx_run(uri, results, root / "bench")
    register_model(uri, "card", model_dir, full_tags=False)
    image = root / "gradcam.png"
    Image.new("L", (8, 8), 128).save(image)
    return {"uri": uri, "run1": run1, "image": image}


def test_card_has_metrics_with_cis_subgroups_and_is_attached(store, tmp_path):
    markdown, page = write_model_card("models:/card/1", tmp_path / "out", store["uri"],
                                      attributions=[(store["image"], "Grad-CAM, cardiomegaly")])
    text, html = markdown.read_text(), page.read_text()
    for section in ("## Intended use", "## Out-of-scope use", "## Training data", "## Evaluation (benchx)",
                    "## Subgroup performance", "## Limitations", "## Attribution examples"):
        assert section in text
    # per-seed values are equal here: no seed spread column; the 0.1 fraction stays in results.csv
    assert "| phantom-2d | linear_probe | auroc_macro | 0.910 | 0.880 - 0.930 | 40 |" in text
    assert "std over seeds" not in text and "the seeds do not change these results" in text
    assert "| phantom-2d | linear_probe | auroc_macro | sex | F vs M | 0.040 |" in text
    assert f"Manifest hash: {MANIFEST_HASH}" in text and "Promotion gate: not run" in text
    assert "failed: phantom-2d zero_shot fraction 1.0 seed 0: no prompts" in text
    assert "![Grad-CAM, cardiomegaly](attributions/00-gradcam.png)" in text
    assert "<td>0.880 - 0.930</td>" in html and "x&lt;script&gt;" in html and "<script>" not in html
    assert '<img src="attributions/00-gradcam.png"' in html

    client = MlflowClient(store["uri"])
    tag = client.get_model_version("card", "1").tags["model_card"]
    assert tag == f"runs:/{store['run1']}/model_card"
    local = download_artifacts(artifact_uri=tag, dst_path=str(tmp_path / "dl"), tracking_uri=store["uri"])
    assert (tmp_path / "dl" / "model_card" / "model_card.md").read_text() == text
    assert sorted(p.name for p in (tmp_path / "dl" / "model_card").rglob("*") if p.is_file()) == [
        "00-gradcam.png", "model_card.html", "model_card.md"] and local


def test_card_without_benchx_says_so_and_lists_missing_lineage(store, tmp_path):
    markdown, _ = write_model_card("models:/card/2", tmp_path, store["uri"])
    text = markdown.read_text()
    assert "No benchx results are recorded for this version." in text
    assert "Lineage incomplete: run tag medvl.split_hashes is missing." in text
    assert "## Attribution examples" not in text


def test_cli_writes_the_card_and_bad_input_exits_2_with_one_line(store, tmp_path, capsys):
    assert main(["card", "models:/card/1", "-o", str(tmp_path / "c"), "--tracking-uri", store["uri"]]) == 0
    assert (tmp_path / "c" / "model_card.html").is_file() and "attached to models:/card/1" in capsys.readouterr().out
    missing = tmp_path / "nope.png"
    for argv, message in ((["models:/card/1", "--attribution", str(missing)], f"{missing}: attribution image not found"),
                          (["models:/card/7"], "models:/card/7: not in the registry")):
        assert main(["card", *argv, "-o", str(tmp_path / "d"), "--tracking-uri", store["uri"]]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("medvl card")]
        assert len(err) == 1 and err[0].startswith(f"medvl card: {message}")
    with pytest.raises(CardError):
        write_model_card("models:/card/1", tmp_path / "e", store["uri"], attributions=[tmp_path / "c" / "model_card.md"])


def test_card_states_the_gate_and_the_training_data_in_words(tmp_path):
    from medvl.cli import main as medvl

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert medvl(["synth", "-o", str(tmp_path / "cohort"), "--n-2d", "12", "--n-3d", "0", "--size", "64", "-q"]) == 0
    assert medvl(["ingest", "phantom", str(tmp_path / "cohort"), "-o", str(tmp_path / "m.parquet"), "-q"]) == 0
    version, _ = register_model(uri, "gated", save_tiny_model(tmp_path / "model"), manifest=str(tmp_path / "m.parquet"))
    client = MlflowClient(uri)
    client.set_model_version_tag("gated", version, "gate.passed", "true")
    client.set_model_version_tag("gated", version, "gate.policy_sha256", "b" * 64)
    client.set_registered_model_alias("gated", "champion", version)
    text = write_model_card(f"models:/gated/{version}", tmp_path / "card", uri)[0].read_text()
    assert "Promotion gate: passed, holds @champion (policy sha256 bbbbbbbbbbbb...)" in text
    assert "12 studies from 1 source(s), entirely synthetic (generated phantoms, no patient data)" in text
    assert "licence: generated locally by medvl synth" in text
    assert "| source | split | modality | studies |" in text and "| phantom | train |" in text
    client.set_model_version_tag("gated", version, "gate.passed", "false")
    client.set_model_version_tag("gated", version, "gate.reasons", '["partial results: missing seeds 1, 2", "x < 1"]')
    text = write_model_card(f"models:/gated/{version}", tmp_path / "card", uri)[0].read_text()
    assert "Promotion gate: refused (policy sha256 bbbbbbbbbbbb...): partial results: missing seeds 1, 2; x < 1" in text
    # a run that read a training cache names no manifest: the cache's cache.json does
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "cache.json").write_text(json.dumps({"manifest": str(tmp_path / "m.parquet")}))
    version, _ = register_model(uri, "gated", save_tiny_model(tmp_path / "model2", 1), manifest="",
                                cache=str(tmp_path / "cache"))
    text = write_model_card(f"models:/gated/{version}", tmp_path / "card2", uri)[0].read_text()
    assert "12 studies from 1 source(s), entirely synthetic" in text


def _rich_results(name: str, version: str) -> dict:
    """A results document the size of a real suite: 14 classes, 3 fractions, 3 seeds that differ, 3 groups."""
    doc = results_doc(name, version)
    rows = []
    for task in ("linear_probe", "finetune_frozen", "zero_shot"):
        for fraction in ((1.0,) if task == "zero_shot" else (0.01, 0.1, 1.0)):
            for metric in ["auroc_macro", "f1_macro", "accuracy", *(f"auroc_Class {i}" for i in range(14))]:
                for group, values in (("", ("",)), ("sex", ("F", "M")), ("view", ("AP", "PA", "LL")),
                                      ("age_band", ("18-39", "40-59", "60-79", "80+"))):
                    for index, value in enumerate(values):
                        mean = 0.8 - 0.01 * index
                        rows.append({"dataset": "phantom-2d", "task": task, "fraction": fraction, "metric": metric,
                                     "mean": mean, "std": 0.02, "ci_low": mean - 0.05, "ci_high": mean + 0.05,
                                     "per_seed": [mean - 0.02, mean, mean + 0.02], "group": group,
                                     "group_value": value, "n_test": 40})
    doc["results"] = rows
    return doc


def test_a_full_suite_card_stays_short_and_shows_seed_spread_and_interrupted_runs(tmp_path):
    from mlflow.entities import RunStatus

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    version, _ = register_model(uri, "rich", save_tiny_model(tmp_path / "model"))
    log_benchx_run(uri, _rich_results("rich", version), tmp_path / "bench")
    client = MlflowClient(uri)
    killed = client.create_run(client.get_experiment_by_name("benchx").experiment_id, run_name="interrupted",
                               tags={"benchx.model_name": "rich", "benchx.model_version": version,
                                     "benchx.suite": "phantom"}).info.run_id  # fmt: skip
    client.set_terminated(killed, RunStatus.to_string(RunStatus.KILLED))
    text = write_model_card(f"models:/rich/{version}", tmp_path / "card", uri)[0].read_text()
    assert len(text.splitlines()) <= 150, len(text.splitlines())
    assert "std over seeds" in text and "auroc_Class 3" not in text
    assert f"benchx run {killed} (suite phantom) ended KILLED before it wrote results" in text
    assert killed not in text.split("## Limitations")[1]  # not reported as missing lineage
    assert "| phantom-2d | linear_probe | auroc_macro | view | AP vs LL | 0.020 |" in text
    assert main(["lineage", f"models:/rich/{version}", "--tracking-uri", uri]) == 0
