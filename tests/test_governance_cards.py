"""Model cards (governance.cards, medvl card): content from MLflow, Markdown + HTML, attached to the version."""

from __future__ import annotations

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
    for section in ("## Intended use", "## Training data", "## Evaluation (benchx)", "## Subgroup performance",
                    "## Limitations", "## Attribution examples"):
        assert section in text
    assert "| phantom-2d | linear_probe | 1 | auroc_macro | 0.910 | 0.010 | 0.880 - 0.930 | 40 |" in text
    assert "| phantom-2d | linear_probe | 1 | auroc_macro | sex | M | 0.860 | 0.810 - 0.880 | 40 |" in text
    assert "gap 0.040 (F vs M)" in text and f"Manifest hash: {MANIFEST_HASH}" in text
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
