"""Similar cases: the nearest studies of the indexed cohort to the open study, and text-to-image search."""

from __future__ import annotations

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


def _cases(index: EmbeddingIndex, cases: list[SimilarCase], key: str) -> None:
    """One row per case: its thumbnail, then the study, similarity and report text."""
    if not cases:
        st.info("No similar case in the index.")
    for rank, case in enumerate(cases):
        picture, text = st.columns([1, 4])
        thumbnail = index.thumbnail(case.row) if case.row >= 0 else None
        if thumbnail is not None:
            picture.image(thumbnail, caption=f"similarity {case.score:.3f}", width="stretch")
        text.markdown(f"**{case.study_id}** · {case.split or 'no split'} · similarity {case.score:.3f}")
        text.text_area("Report", case.report or case.impression, key=f"{key}_{rank}", disabled=True, height=110,
                       label_visibility="collapsed")  # fmt: skip


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
    _cases(index, index.search_text(loaded.model, text, NEIGHBOURS), "text_hit")
study = current_study()
if study is None:
    st.info("Open a study on the Home page to see its nearest cases.")
    st.stop()
analysis = reading_or_stop(loaded, study).analysis
st.subheader(f"Nearest to {study.name}")
exclude = study.name if study.source == "manifest" else None
audit_event(audit, user.name, "similar.nearest", study.study_hash, model=loaded.label)
_cases(index, index.nearest(analysis.embedding, NEIGHBOURS, exclude=exclude), "nearest")
