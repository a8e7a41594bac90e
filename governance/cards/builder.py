"""Write a version's model card (Markdown + HTML), attach it to the version's source run and tag the version."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from governance.cards.content import build_card
from governance.cards.document import to_html, to_markdown
from governance.lineage import benchx_results, mlflow_client, model_lineage

CARD_ARTIFACT_DIR = "model_card"
MARKDOWN_NAME = "model_card.md"
HTML_NAME = "model_card.html"
ATTRIBUTION_DIR = "attributions"
CARD_TAG = "model_card"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg")


class CardError(ValueError):
    """A model card cannot be written (no source run, unusable attribution image); names the cause.

    Attributes:
        path: the model URI or file concerned.
        reason: what is wrong and what to do.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _copy_attributions(images: Sequence[Path | tuple[Path, str]], out_dir: Path) -> list[tuple[str, str]]:
    """Copy attribution images into ``out_dir/attributions``; returns (relative path, caption) pairs."""
    pairs = []
    for item in images:
        path, caption = (Path(item[0]), item[1]) if isinstance(item, tuple) else (Path(item), Path(item).stem)
        if not path.is_file():
            raise CardError(path, "attribution image not found")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise CardError(path, f"attribution image must be {', '.join(IMAGE_SUFFIXES)}")
        target = out_dir / ATTRIBUTION_DIR / f"{len(pairs):02d}-{path.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.resolve() != target.resolve():
            shutil.copyfile(path, target)
        pairs.append((target.relative_to(out_dir).as_posix(), caption))
    return pairs


def training_data(manifest: str | None) -> dict | None:
    """The training manifest in words: its sources (description, synthetic or real, licence) and the studies per
    source, split and modality; None when the manifest is not readable here."""
    from medvl.data.adapters import ADAPTERS
    from medvl.data.manifest import ManifestError, read_manifest

    if not manifest:
        return None
    try:
        frame = read_manifest(manifest)
    except (ManifestError, OSError):
        return None
    frame = frame.assign(modality=[images[0]["modality"] if len(images) else "none" for images in frame["images"]])
    sources = []
    for name in sorted(frame["source"].unique()):
        adapter = ADAPTERS.get(name)
        sources.append({"name": name, "description": adapter.description if adapter else "unknown source",
                        "synthetic": bool(adapter and adapter.synthetic),
                        "licence": adapter.licence if adapter else "unknown"})
    counts = frame.groupby(["source", "split", "modality"]).size()
    return {"studies": len(frame), "sources": sources,
            "counts": [{"source": s, "split": sp, "modality": m, "studies": int(n)} for (s, sp, m), n in counts.items()]}


def write_model_card(
    model_uri: str,
    out_dir: Path,
    tracking_uri: str | None = None,
    *,
    attributions: Sequence[Path | tuple[Path, str]] = (),
) -> tuple[Path, Path]:
    """Build the card of a registered version from MLflow, write it and attach it to the version.

    The Markdown and HTML files (and any attribution images, under ``attributions/``) go to ``out_dir`` and
    are logged as artifacts of the version's source run under ``model_card/``; the model-version tag
    ``model_card`` is set to ``runs:/<run_id>/model_card``.

    Args:
        model_uri: ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``.
        out_dir: folder for ``model_card.md`` and ``model_card.html`` (created).
        tracking_uri: MLflow tracking URI (else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``).
        attributions: attribution example images (paths, or ``(path, caption)`` pairs) supplied by the pipeline.

    Returns:
        The Markdown and HTML paths.

    Raises:
        governance.lineage.LineageError: ``model_uri`` does not name a registered version.
        CardError: the version has no source run to attach the card to, or an attribution image is unusable.
    """
    lineage = model_lineage(model_uri, tracking_uri)
    run_id = lineage["model"]["run_id"]
    if not run_id or lineage["run"] is None:
        raise CardError(model_uri, "the version has no source run in this store to attach the card to")
    results = [benchx_results(entry["run_id"], lineage["tracking_uri"])
               for entry in lineage["benchx"] if entry["summary"] is not None]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = _copy_attributions(attributions, out_dir)
    doc = build_card(lineage, results, pairs, training_data(lineage["data"].get("manifest")))
    markdown, page = out_dir / MARKDOWN_NAME, out_dir / HTML_NAME
    markdown.write_text(to_markdown(doc), encoding="utf-8")
    page.write_text(to_html(doc), encoding="utf-8")
    client = mlflow_client(lineage["tracking_uri"])
    for path in (markdown, page):
        client.log_artifact(run_id, str(path), CARD_ARTIFACT_DIR)
    for relative, _ in pairs:
        client.log_artifact(run_id, str(out_dir / relative), f"{CARD_ARTIFACT_DIR}/{ATTRIBUTION_DIR}")
    model = lineage["model"]
    client.set_model_version_tag(model["name"], model["version"], CARD_TAG, f"runs:/{run_id}/{CARD_ARTIFACT_DIR}")
    return markdown, page
