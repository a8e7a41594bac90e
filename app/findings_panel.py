"""Findings: the out-of-distribution notice, calibrated probabilities with their operating points, and a
free-text query."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.model_choice import LoadedModel
from medvl.infer.attribution import QueryScore, query_score
from medvl.infer.reading import Finding, StudyReading

SHOW_ANYWAY = "show_ood_findings"


def findings_table(findings: list[Finding]) -> pd.DataFrame:
    """One row per finding, most probable first: finding, probability, operating point and the call."""
    rows = [
        {"finding": f.name, "probability": f.probability,
         "operating point": f.threshold, "call": {True: "positive", False: "negative", None: "-"}[f.positive]}
        for f in findings
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["finding", "probability", "operating point", "call"])


def _prompts(findings: list[Finding]) -> pd.DataFrame:
    return pd.DataFrame([{"finding": f.name, "source": f.source, "positive": " | ".join(f.prompts[0]),
                          "negative": " | ".join(f.prompts[1])} for f in findings])  # fmt: skip


def out_of_distribution_notice(reading: StudyReading) -> bool:
    """Show the notice when the study lies outside the model's training data; True when the findings may be
    shown (in distribution, or the reader asked for them)."""
    if not reading.out_of_distribution:
        return True
    reasons = "\n".join(f"- {reason}" for reason in reading.domain.reasons)
    st.error(f"**Outside what this model was trained on.** Its findings on this study are not reliable:\n{reasons}",
             icon="⚠️")  # fmt: skip
    return st.checkbox("Show the finding probabilities anyway", key=SHOW_ANYWAY)


def findings_panel(loaded: LoadedModel, reading: StudyReading) -> tuple[list[Finding], QueryScore | None]:
    """Draw the findings and the query box; returns the findings and the query's score (None when empty)."""
    st.subheader("Findings")
    findings = reading.findings
    if out_of_distribution_notice(reading):
        st.dataframe(
            findings_table(findings),
            hide_index=True,
            key="findings_table",
            width="stretch",
            column_config={
                "finding": st.column_config.TextColumn("finding", width="medium"),
                "probability": st.column_config.ProgressColumn(
                    "probability", min_value=0.0, max_value=1.0, format="%.2f", width="small"
                ),
                "operating point": st.column_config.NumberColumn(
                    "cut-off", format="%.2f", width="small",
                    help="the operating point: called positive at or above this probability",
                ),
                "call": st.column_config.TextColumn("call", width="small"),
            },  # fmt: skip
        )
        st.caption(f"Probabilities: {loaded.reader.calibration_note(reading.kind)}.")
        with st.expander("How each finding is scored"):
            st.dataframe(_prompts(findings), hide_index=True, key="findings_prompts")
    text = st.text_input("Free-text query", key="query", placeholder="e.g. small left pleural effusion")
    query = None
    if text.strip():
        query = query_score(loaded.model, reading.analysis, text)
        st.progress(query.probability, text=f"'{query.text}': {query.probability:.2f} "
                                            f"(compared with '{query.negative_prompt}'; cosine {query.similarity:.3f})")  # fmt: skip
    return findings, query


def intended_use_banner(loaded: LoadedModel) -> None:
    """What the model is for and what it was trained on, from the model card's intended use and its saved
    training domain."""
    from governance.cards.content import INTENDED_USE

    domain = loaded.reader.domain
    trained = (
        f"Trained on {domain.describe()}."
        if domain is not None
        else "The model was saved without a description of its training data."
    )
    st.info(f"**Intended use.** {INTENDED_USE} {trained}", icon="ℹ️")
