"""The model's reading of the open study, computed once per (model, study) and kept in the session."""

from __future__ import annotations

import streamlit as st

from app.model_choice import LoadedModel
from app.state import ANALYSES
from app.study import Study
from medvl.infer.loading import prepare_input
from medvl.infer.reading import StudyReading
from medvl.io import MedvlIOError


class AnalysisError(ValueError):
    """The study cannot be prepared for the model; the message says why."""


def study_reading(loaded: LoadedModel, study: Study) -> StudyReading:
    """:meth:`medvl.infer.reading.Reader.read` of the study with this model, with dense heatmap regions
    (cached in the session).

    Raises:
        AnalysisError: the image cannot be prepared as the model's training data was (constant image...).
    """
    cache: dict[tuple[str, str], StudyReading] = st.session_state.setdefault(ANALYSES, {})
    key = (loaded.fingerprint, study.study_hash)
    if key not in cache:
        try:
            model_input = prepare_input(study.record, loaded.prep, modality=study.modality)
        except (MedvlIOError, ValueError) as exc:
            raise AnalysisError(f"{study.name}: cannot prepare the image for the model ({exc})") from exc
        cache.clear()  # one study at a time: keep the memory of a session bounded
        modality = "" if study.modality == "OT" else study.modality
        cache[key] = loaded.reader.read(model_input, modality, dense=True)
    return cache[key]


def reading_or_stop(loaded: LoadedModel, study: Study) -> StudyReading:
    """:func:`study_reading`, or the reason in the page and the page stopped when the study cannot be read."""
    try:
        return study_reading(loaded, study)
    except AnalysisError as exc:
        st.error(str(exc))
        st.stop()
        raise  # st.stop() ends a Streamlit run; outside one, the error goes on to the caller
