"""Per-process services (feedback store, audit log, user store) and per-session state of the review app."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from app.auth import User, UserStore
from app.feedback import FeedbackStore
from app.settings import AppSettings
from app.study import Study
from governance.audit import AuditLog

USER = "user"
STUDY = "study"
ANALYSES = "analyses"
WORKDIR = "workdir"
SLICE = "slice_index"


@st.cache_resource
def feedback_store(url: str) -> FeedbackStore:
    """The feedback database, opened once per process."""
    return FeedbackStore(url)


def audit_log(settings: AppSettings) -> AuditLog:
    """The audit log (appends are safe across processes)."""
    return AuditLog(settings.audit)


def user_store(settings: AppSettings) -> UserStore:
    """The users file, re-read on every call so that added users can log in without a restart."""
    return UserStore(settings.users)


def current_user() -> User | None:
    """The logged-in user of this session, if any."""
    return st.session_state.get(USER)


def require_user() -> User:
    """The logged-in user, or stop the page with a pointer to the login on the Home page."""
    user = current_user()
    if user is None:
        st.warning("Please log in on the Home page first.")
        st.stop()
    return user


def current_study() -> Study | None:
    """The study open in this session, if any."""
    return st.session_state.get(STUDY)


def session_workdir() -> Path:
    """A private temporary folder for this session's uploads (one per session, fresh per upload)."""
    if WORKDIR not in st.session_state:
        st.session_state[WORKDIR] = tempfile.TemporaryDirectory(prefix="medvl-review-")
    root = Path(st.session_state[WORKDIR].name)
    return Path(tempfile.mkdtemp(dir=root))


def set_study(study: Study) -> None:
    """Make ``study`` the open study (the slice position, counted from 1, starts in the middle)."""
    st.session_state[STUDY] = study
    st.session_state[SLICE] = study.slices.shape[0] // 2 + 1
