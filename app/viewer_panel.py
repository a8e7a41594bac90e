"""The study viewer with concept attribution: window / level, slice slider, heatmap overlay, slice relevance,
orientation, de-identified metadata and the top lexicon concepts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app.findings_panel import SHOW_ANYWAY
from app.model_choice import LoadedModel
from app.state import SLICE
from app.study import Study
from app.viewer import (
    MANUAL,
    auto_window,
    colour_bar,
    edge_caption,
    overlay,
    relevance_strip,
    resolve_window,
    to_grey,
    window_choices,
)
from medvl.infer.attribution import (
    ImageAnalysis,
    QueryScore,
    heatmap,
    nearest_slice,
    slice_scores,
    text_direction,
    top_concepts,
    top_slices,
)
from medvl.infer.reading import StudyReading

QUERY_PREFIX = "query: "
CONCEPT_PREFIX = "concept: "
TOP_SLICES = 3
TOP_CONCEPTS = 8


def _targets(loaded: LoadedModel, reading: StudyReading, query: QueryScore | None) -> list[str]:
    """The findings offered for the study, most probable first (the default target), then concepts and the query."""
    concepts = [CONCEPT_PREFIX + c.name for c in top_concepts(reading.analysis, loaded.bank, TOP_CONCEPTS)]
    hidden = reading.out_of_distribution and not st.session_state.get(SHOW_ANYWAY)  # as the findings are
    findings = [] if hidden else [f.name for f in reading.findings]
    return findings + concepts + ([QUERY_PREFIX + query.text] if query else [])


def _direction(loaded: LoadedModel, target: str):
    if target.startswith(QUERY_PREFIX):
        return text_direction(loaded.model, target.removeprefix(QUERY_PREFIX))
    return loaded.bank.direction(target.removeprefix(CONCEPT_PREFIX))


def _window(study: Study) -> tuple[float, float]:
    choice = st.selectbox("Window", window_choices(study.modality), key="window")
    if choice != MANUAL:
        return resolve_window(choice, study.slices)
    center, width = auto_window(study.slices)
    c1, c2 = st.columns(2)
    center = c1.number_input("Level (center)", value=round(center, 1), key="window_center")
    width = c2.number_input("Width", value=round(width, 1), min_value=1.0, key="window_width")
    return resolve_window(MANUAL, study.slices, (center, width))


def _jump(display_index: int) -> None:
    st.session_state[SLICE] = display_index + 1  # the slider counts from 1


def _slice_controls(study: Study, analysis: ImageAnalysis, relevance: np.ndarray, target: str) -> int:
    """Relevance strips, top-slice buttons and the slice slider; returns the displayed slice."""
    model_slice = nearest_slice(analysis.z_mm, float(study.z_mm[st.session_state.get(SLICE, 1) - 1]))
    label = {"attention": "the model's slice-pooling attention: each slice's share of the volume embedding",
             "max": "each slice's share of the embedding dimensions it sets (max over slices, no slice adapter)",
             "3d": "uniform over the 3D encoder's depth cells (a native 3D model weighs no slices)"}.get(analysis.pooling, "uniform (the model averages its slices: no trained slice adapter)")  # fmt: skip
    axis = f"slice 1 (left) to {analysis.n_slices} (right) of the model input; red mark: the slice shown; colour: low (purple) to high (yellow)"
    st.caption(f"Per-slice relevance, {label}:")
    st.image(relevance_strip(analysis.slice_weights, model_slice), width="stretch")
    st.caption(f"Per-slice score for '{target}' (each slice's best region):")
    st.image(relevance_strip(relevance, model_slice), width="stretch", caption=axis)
    buttons = st.columns(TOP_SLICES)
    for column, m in zip(buttons, top_slices(relevance, TOP_SLICES), strict=False):
        shown = nearest_slice(study.z_mm, float(analysis.z_mm[m]))
        column.button(f"Top slice {shown + 1}", key=f"top_slice_{m}", on_click=_jump, args=(shown,))
    return st.slider("Slice", 1, study.slices.shape[0], key=SLICE) - 1


def viewer_panel(study: Study, loaded: LoadedModel, reading: StudyReading, query: QueryScore | None) -> str:
    """Draw the viewer with the attribution heatmap; returns the chosen attribution target."""
    st.subheader("Viewer and concept attribution")
    analysis = reading.analysis
    controls, image = st.columns([1, 2])
    with controls:
        target = st.selectbox("Attribution for", _targets(loaded, reading, query), key="target")
        opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05, key="opacity")
        center, width = _window(study)
    direction = _direction(loaded, target)
    scale = loaded.bank.scale
    index = 0
    with image:
        if study.is_volume:
            index = _slice_controls(study, analysis, slice_scores(analysis, direction, scale), target)
        model_slice = nearest_slice(analysis.z_mm, float(study.z_mm[index])) if study.is_volume else 0
        plane = study.slices[index]
        heat = heatmap(analysis, direction, scale, model_slice, out_shape=plane.shape)
        caption = f"Attribution: {loaded.bank.describe(target)}" + (
            f" · slice {index + 1}/{study.slices.shape[0]}" if study.is_volume else ""
        )
        st.image(overlay(to_grey(plane, center, width), heat, opacity), caption=caption, width="stretch")
        st.image(colour_bar(), width="stretch",
                 caption=f"Heatmap colour: region score from {float(heat.min()):.2f} (blue) to {float(heat.max()):.2f} "
                         "(red), in the model's logit units")  # fmt: skip
        st.caption(edge_caption(study.orientation))
    with controls:
        with st.expander("Study facts (de-identified)", expanded=False):
            st.table(pd.DataFrame(study.facts.items(), columns=["field", "value"]))
            if study.identifiers_present:
                st.warning(
                    "The header still carries direct identifiers (not shown): "
                    + ", ".join(study.identifiers_present)
                )
        st.caption("Top lexicon concepts")
        concepts = top_concepts(analysis, loaded.bank, TOP_CONCEPTS)
        st.dataframe(pd.DataFrame([{"concept": c.name, "CUI": c.cui or "", "observation": c.parent_observation or "",
                                    "score": round(c.score, 3)} for c in concepts]),
                     hide_index=True, key="concepts_table")  # fmt: skip
    return target
