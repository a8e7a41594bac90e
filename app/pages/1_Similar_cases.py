"""Similar cases: the nearest studies of the indexed cohort to the open study, and text-to-image search."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.analysis import analysis_or_stop
from app.model_choice import choose_model
from app.settings import settings_from_env
from app.state import current_study, require_user
from medvl.infer.similar import EmbeddingIndex, SimilarCase, SimilarIndexError

NEIGHBOURS = 5


@st.cache_resource(show_spinner="Loading the similar-case index...")
def cached_index(path: str, fingerprint: str) -> EmbeddingIndex:
    """The index at ``path``, once per process (refused when built with another model)."""
    return EmbeddingIndex.load(path, fingerprint)


def _table(cases: list[SimilarCase]) -> pd.DataFrame:
    return pd.DataFrame([{"study": c.study_id, "similarity": round(c.score, 3), "impression": c.impression,
                          "split": c.split} for c in cases])  # fmt: skip


st.title("Similar cases")
require_user()
settings = settings_from_env()
if settings.index is None:
    st.info("No similar-case index configured: build one with 'medvl review index' and pass --index.")
    st.stop()
loaded = choose_model(settings)
if loaded is None:
    st.stop()
try:
    index = cached_index(str(settings.index), loaded.fingerprint)
except SimilarIndexError as exc:
    st.error(str(exc))
    st.stop()
text = st.text_input("Find studies showing...", key="similar_text", placeholder="e.g. large right pleural effusion")
if text.strip():
    st.dataframe(_table(index.search_text(loaded.model, text, NEIGHBOURS)), hide_index=True, key="text_hits")
study = current_study()
if study is None:
    st.info("Open a study on the Home page to see its nearest cases.")
    st.stop()
analysis = analysis_or_stop(loaded, study)
st.subheader(f"Nearest to {study.name}")
exclude = study.name if study.source == "manifest" else None
st.dataframe(_table(index.nearest(analysis.embedding, NEIGHBOURS, exclude=exclude)), hide_index=True, key="nearest")
