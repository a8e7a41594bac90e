"""Findings: the zero-shot probability of every observation as bars, with the prompts used, and a free-text query."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.model_choice import LoadedModel
from medvl.infer.attribution import (
    FindingScore,
    ImageAnalysis,
    QueryScore,
    finding_scores,
    observations_for,
    query_score,
)


def findings_table(scores: list[FindingScore]) -> pd.DataFrame:
    """One row per observation, most probable first: finding, probability, positive and negative prompts."""
    rows = [
        {"finding": s.name, "probability": s.probability,
         "positive prompts": " | ".join(s.positive_prompts), "negative prompts": " | ".join(s.negative_prompts)}
        for s in scores
    ]  # fmt: skip
    return pd.DataFrame(rows).sort_values("probability", ascending=False, kind="stable").reset_index(drop=True)


def findings_panel(loaded: LoadedModel, analysis: ImageAnalysis) -> tuple[list[FindingScore], QueryScore | None]:
    """Draw the findings bars and the query box; returns the scores and the query's score (None when empty)."""
    st.subheader("Findings")
    scores = finding_scores(analysis, loaded.bank, observations_for(loaded.bank, analysis.n_slices > 1))
    st.dataframe(
        findings_table(scores),
        hide_index=True,
        key="findings_table",
        column_config={
            "probability": st.column_config.ProgressColumn("probability", min_value=0.0, max_value=1.0, format="%.2f",
                                                           help="zero-shot: the patch-concept head (the best region of any slice "
                                                                "against the trained concept) where the model has one, "
                                                                "else softmax over positive vs negative prompts"),
        },  # fmt: skip
    )
    text = st.text_input("Free-text query", key="query", placeholder="e.g. small left pleural effusion")
    query = None
    if text.strip():
        query = query_score(loaded.model, analysis, text)
        st.progress(query.probability, text=f"'{query.text}': {query.probability:.2f} "
                                            f"(compared with '{query.negative_prompt}'; cosine {query.similarity:.3f})")  # fmt: skip
    return scores, query
