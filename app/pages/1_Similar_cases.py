"""Similar cases: the nearest studies of the indexed cohort to the open study, and text-to-image search."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.analysis import reading_or_stop
from app.login import require_user
from app.model_choice import choose_model
from app.state import audit_event, current_study, services_or_stop
from medvl.infer.similar import EmbeddingIndex, SimilarCase, SimilarIndexError

NEIGHBOURS = 5
MAX_AUDITED_QUERY = 500


@st.cache_resource(show_spinner="Loading the similar-case index...")
def cached_index(path: str, fingerprint: str) -> EmbeddingIndex:
    """The index at ``path``, once per process (refused when built with another model)."""
    return EmbeddingIndex.load(path, fingerprint)


def _table(cases: list[SimilarCase]) -> pd.DataFrame:
    return pd.DataFrame([{"study": c.study_id, "similarity": round(c.score, 3), "impression": c.impression,
                          "split": c.split} for c in cases])  # fmt: skip


st.title("Similar cases")
settings, users, audit = services_or_stop()
user = require_user(users, audit)
if settings.index is None:
    st.info("No similar-case index configured: build one with 'medvl review index' and pass --index.")
    st.stop()
loaded = choose_model(settings, user)
if loaded is None:
    st.stop()
try:
    index = cached_index(str(settings.index), loaded.fingerprint)
except SimilarIndexError as exc:
    st.error(str(exc))
    st.stop()
text = st.text_input("Find studies showing...", key="similar_text", placeholder="e.g. large right pleural effusion")
if text.strip():
    audit_event(audit, user.name, "similar.search_text", loaded.label, query=text.strip()[:MAX_AUDITED_QUERY])
    st.dataframe(_table(index.search_text(loaded.model, text, NEIGHBOURS)), hide_index=True, key="text_hits")
study = current_study()
if study is None:
    st.info("Open a study on the Home page to see its nearest cases.")
    st.stop()
analysis = reading_or_stop(loaded, study).analysis
st.subheader(f"Nearest to {study.name}")
exclude = study.name if study.source == "manifest" else None
audit_event(audit, user.name, "similar.nearest", study.study_hash, model=loaded.label)
st.dataframe(_table(index.nearest(analysis.embedding, NEIGHBOURS, exclude=exclude)), hide_index=True, key="nearest")
