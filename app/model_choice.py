"""Choosing the model: a registry model by alias (default ``@champion``) or a local checkpoint folder.

A model is loaded, with its text bank (prompt ensembles and lexicon concepts embedded), once per process and
reference (``st.cache_resource``), so every session and rerun after the first is immediate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from app.settings import AppSettings
from medvl.data.phantom import ZERO_SHOT_PROMPTS
from medvl.data.preprocess import PrepSettings
from medvl.infer.attribution import TextBank, build_text_bank
from medvl.infer.loading import load_for_inference, read_concepts
from medvl.infer.model_ref import ModelRefError, model_fingerprint, resolve_model
from medvl.text.labels import LabelSpace
from medvl.text.prompts import build_prompts

REGISTRY = "Registry model"
LOCAL = "Local checkpoint"


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for review: where it came from, its weights' fingerprint, preprocessing and text bank."""

    ref: str
    name: str
    version: str
    model_dir: Path
    fingerprint: str
    model: Any
    prep: PrepSettings
    bank: TextBank

    @property
    def label(self) -> str:
        """How the model is named in the page and in feedback: ``NAME vVERSION`` or the folder name."""
        return f"{self.name} v{self.version}" if self.name else self.model_dir.name


def prompt_set(name: str) -> dict[str, Any]:
    """The zero-shot prompts of a named set: ``default`` (ensembles for CheXpert-14 and the chest/abdomen CT
    findings) or ``phantom``."""
    return dict(ZERO_SHOT_PROMPTS) if name == "phantom" else dict(build_prompts(LabelSpace.chest_abdomen_ct()))


def load_model(ref: str, tracking_uri: str | None, prompts: str) -> LoadedModel:
    """Resolve, load and prepare a model (no caching; see :func:`cached_model`).

    Raises:
        ModelRefError: the reference leads to no saved model.
    """
    resolved = resolve_model(ref, tracking_uri=tracking_uri)
    model, prep = load_for_inference(resolved.model_dir)
    bank = build_text_bank(model, prompt_set(prompts), trained_concepts=read_concepts(resolved.model_dir))
    return LoadedModel(ref, resolved.name, resolved.version, resolved.model_dir,
                       model_fingerprint(resolved.model_dir), model, prep, bank)  # fmt: skip


@st.cache_resource(show_spinner="Loading the model and embedding its prompts...")
def cached_model(ref: str, tracking_uri: str | None, prompts: str) -> LoadedModel:
    """:func:`load_model`, once per process and arguments."""
    return load_model(ref, tracking_uri, prompts)


def registry_parts(ref: str) -> tuple[str, str]:
    """``(name, alias)`` of a ``models:/NAME@ALIAS`` reference; ``("", "champion")`` for anything else."""
    if ref.startswith("models:/") and "@" in ref:
        name, alias = ref.removeprefix("models:/").split("@", 1)
        return name, alias
    return "", "champion"


def choose_model(settings: AppSettings) -> LoadedModel | None:
    """Sidebar controls for the model; returns the loaded model, or None (with the reason shown) on failure."""
    default_local = not settings.model.startswith(("models:/", "runs:/"))
    with st.sidebar:
        st.subheader("Model")
        kind = st.radio("Source", (REGISTRY, LOCAL), index=1 if default_local else 0, key="model_kind", horizontal=True)
        if kind == REGISTRY:
            name, alias = registry_parts(settings.model)
            name = st.text_input("Registered model", value=name or "medvl", key="model_name")
            alias = st.text_input("Alias", value=alias, key="model_alias")
            ref = f"models:/{name.strip()}@{alias.strip()}"
        else:
            ref = st.text_input("Checkpoint folder", value=settings.model if default_local else "", key="model_dir")
        if not ref.strip():
            st.info("Give a checkpoint folder (a saved model or a pretraining run).")
            return None
        try:
            loaded = cached_model(ref.strip(), settings.tracking_uri, settings.prompts)
        except ModelRefError as exc:
            st.error(f"Cannot load the model: {exc}")
            return None
        st.caption(f"{loaded.label} · fingerprint {loaded.fingerprint[:12]}")
    return loaded
