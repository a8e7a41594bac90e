"""Choosing the model: one of the models an administrator approved, or (administrators only) a local checkpoint.

Reviewers pick from the approved references (``--model`` and ``--approved-model`` of ``medvl review serve``);
they cannot type a registry name, a ``runs:/`` URI or a folder. Administrators may also open a checkpoint folder,
and only under a configured root (``--model-root``): anything else is refused with the same message whether it
exists or not, so the field is no file-existence oracle.

A model is loaded, with its text bank (prompt ensembles and lexicon concepts embedded), once per process and
reference (``st.cache_resource``); at most :data:`MAX_LOADED_MODELS` stay in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from app.auth import User
from app.settings import AppSettings
from medvl.data.preprocess import PrepSettings
from medvl.infer.attribution import TextBank
from medvl.infer.model_ref import model_fingerprint, resolve_model
from medvl.infer.reading import Reader

APPROVED = "Approved model"
LOCAL = "Local checkpoint"
MAX_LOADED_MODELS = 4


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for review: where it came from, its weights' fingerprint and its :class:`Reader` (weights,
    preprocessing, text bank, calibration, training domain)."""

    ref: str
    name: str
    version: str
    model_dir: Path
    fingerprint: str
    reader: Reader

    @property
    def model(self) -> Any:
        """The model in eval mode."""
        return self.reader.model

    @property
    def prep(self) -> PrepSettings:
        """The preprocessing it was trained with."""
        return self.reader.prep

    @property
    def bank(self) -> TextBank:
        """Its text bank."""
        return self.reader.bank

    @property
    def label(self) -> str:
        """How the model is named in the page and in feedback: ``NAME vVERSION`` or the folder name."""
        return f"{self.name} v{self.version}" if self.name else self.model_dir.name


def load_model(ref: str, tracking_uri: str | None, prompts: str) -> LoadedModel:
    """Resolve, load and prepare a model (no caching; see :func:`cached_model`).

    Raises:
        ModelRefError: the reference leads to no saved model.
        ValueError: a file saved beside the weights (calibration, training domain) cannot be read.
    """
    resolved = resolve_model(ref, tracking_uri=tracking_uri)
    return LoadedModel(ref, resolved.name, resolved.version, resolved.model_dir,
                       model_fingerprint(resolved.model_dir), Reader(resolved.model_dir, prompts))  # fmt: skip


@st.cache_resource(show_spinner="Loading the model and embedding its prompts...", max_entries=MAX_LOADED_MODELS)
def cached_model(ref: str, tracking_uri: str | None, prompts: str) -> LoadedModel:
    """:func:`load_model`, once per process and arguments."""
    return load_model(ref, tracking_uri, prompts)


def allowed_local(folder: str, roots: tuple[Path, ...]) -> Path | None:
    """``folder`` resolved (links followed) when it lies under one of ``roots``, else None."""
    path = Path(folder).expanduser().resolve()
    return path if any(path.is_relative_to(root.expanduser().resolve()) for root in roots) else None


def shown_reference(ref: str) -> str:
    """How a reference is listed: registry and run URIs as they are, a folder by its last two parts (no server
    paths in the page)."""
    return ref if ref.startswith(("models:/", "runs:/")) else "/".join(Path(ref).parts[-2:])


def _chosen_reference(settings: AppSettings, user: User) -> str | None:
    """The reference picked in the sidebar (None, with the reason shown, when it is not allowed)."""
    sources = (APPROVED, LOCAL) if user.is_admin and settings.model_roots else (APPROVED,)
    kind = st.radio("Source", sources, key="model_kind", horizontal=True) if len(sources) > 1 else APPROVED
    if kind == APPROVED:
        return st.selectbox("Model", settings.models, key="model_ref", format_func=shown_reference)
    folder = st.text_input("Checkpoint folder", key="model_dir",
                           help="a saved model or pretraining run under: " + ", ".join(map(str, settings.model_roots)))
    if not folder.strip():
        st.info("Give a checkpoint folder (a saved model or a pretraining run).")
        return None
    path = allowed_local(folder.strip(), settings.model_roots)
    if path is None:
        st.error("Local checkpoints must lie under an allowed folder: " + ", ".join(map(str, settings.model_roots)))
    return str(path) if path else None


def choose_model(settings: AppSettings, user: User) -> LoadedModel | None:
    """Sidebar controls for the model; returns the loaded model, or None (with the reason shown) on failure."""
    with st.sidebar:
        st.subheader("Model")
        ref = _chosen_reference(settings, user)
        if ref is None:
            return None
        try:
            loaded = cached_model(ref, settings.tracking_uri, settings.prompts)
        except ValueError as exc:  # ModelRefError too: no model there, or a damaged file beside it
            st.error(f"Cannot load the model: {exc}")
            return None
        st.caption(f"{loaded.label} · fingerprint {loaded.fingerprint[:12]}")
    return loaded
