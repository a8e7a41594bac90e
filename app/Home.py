"""medvl clinician review: open a study, see findings with concept attribution, record agreement.

Run with ``medvl review serve`` (or ``streamlit run app/Home.py``); settings come from ``MEDVL_REVIEW_*``
environment variables (see :mod:`app.settings`).
"""

from __future__ import annotations

import streamlit as st

from app.analysis import reading_or_stop
from app.feedback import FeedbackError
from app.feedback_form import feedback_form
from app.findings_panel import findings_panel, intended_use_banner
from app.login import login_gate, logout_button
from app.model_choice import choose_model
from app.open_study import open_study_panel
from app.state import clean_stale_uploads, feedback_store, services_or_stop
from app.viewer_panel import viewer_panel

st.set_page_config(page_title="medvl review", layout="wide")
st.title("medvl clinician review")

settings, users, audit = services_or_stop()
clean_stale_uploads()
try:
    store = feedback_store(settings.db_url)
except FeedbackError as exc:  # unreachable database
    st.error(f"The review app is misconfigured: {exc}")
    st.stop()

user = login_gate(users, audit)
if user is None:
    st.stop()
st.sidebar.write(f"Logged in as **{user.name}** ({user.role})")
logout_button(audit)

loaded = choose_model(settings, user)
if loaded is None:
    st.stop()
intended_use_banner(loaded)

study = open_study_panel(settings, user, audit)
if study is None:
    st.info("Open a study to see the model's findings.")
    st.stop()

reading = reading_or_stop(loaded, study)

left, right = st.columns([1, 1])
with right:
    findings, query = findings_panel(loaded, reading)
    feedback_form(user, loaded, study, findings, store, audit)
with left:
    viewer_panel(study, loaded, reading, query)
