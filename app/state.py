"""Per-process services (feedback store, audit log, user store, login throttle, upload folders) and per-session
state of the review app."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import streamlit as st

from app.auth import User, UserStore
from app.feedback import FeedbackStore
from app.settings import AppSettings, settings_from_env
from app.study import Study
from app.throttle import LoginThrottle
from governance.audit import AuditLog, AuditLogError

USER = "user"
STUDY = "study"
ANALYSES = "analyses"
SLICE = "slice_index"
UPLOAD_PREFIX = "medvl-review-upload-"
STALE_UPLOAD_S = 3600.0


@st.cache_resource
def feedback_store(url: str) -> FeedbackStore:
    """The feedback database, opened once per process."""
    return FeedbackStore(url)


def services_or_stop() -> tuple[AppSettings, UserStore, AuditLog]:
    """The settings, users and audit log of a page run; on bad settings the page shows why (no traceback) and
    stops."""
    try:
        settings = settings_from_env()
        return settings, user_store(settings), audit_log(settings)
    except ValueError as exc:  # bad settings, unreadable users file
        st.error(f"The review app is misconfigured: {exc}")
        st.stop()
        raise  # st.stop() ends a Streamlit run; outside one, the error goes on to the caller


def audit_log(settings: AppSettings) -> AuditLog:
    """The audit log (appends are safe across processes)."""
    return AuditLog(settings.audit)


def user_store(settings: AppSettings) -> UserStore:
    """The users file, re-read on every call so that added users can log in without a restart."""
    return UserStore(settings.users)


@st.cache_resource
def login_throttle(users_file: str) -> LoginThrottle:
    """The failed-login throttle of a users file, shared by every session of this process."""
    return LoginThrottle()


def audit_event(audit: AuditLog, actor: str, action: str, subject: str, **details: Any) -> None:
    """Append to the audit log; when that fails the page shows why and stops, so nothing happens unrecorded."""
    try:
        audit.append(actor, action, subject, **details)
    except (AuditLogError, OSError) as exc:
        reason = exc.reason if isinstance(exc, AuditLogError) else exc.strerror
        st.error(f"The audit log cannot be written ({reason}), so this action was not carried out. Ask an "
                 "administrator to check it with 'medvl audit verify'.")  # fmt: skip
        st.stop()
        raise  # st.stop() ends a Streamlit run; outside one, the error goes on to the caller


def current_user() -> User | None:
    """The logged-in user of this session, if any."""
    return st.session_state.get(USER)


def current_study() -> Study | None:
    """The study open in this session, if any."""
    return st.session_state.get(STUDY)


@contextmanager
def upload_folder() -> Iterator[Path]:
    """A private temporary folder for one upload, deleted with its contents when the block ends (the study is
    analysed from memory, so no patient file stays on disk)."""
    with tempfile.TemporaryDirectory(prefix=UPLOAD_PREFIX) as folder:
        yield Path(folder)


def remove_stale_uploads(root: Path, max_age_s: float = STALE_UPLOAD_S) -> int:
    """Delete the upload folders under ``root`` older than ``max_age_s`` (left by a crashed server); returns how
    many were removed."""
    removed = 0
    for folder in root.glob(UPLOAD_PREFIX + "*"):
        if folder.is_dir() and not folder.is_symlink() and time.time() - folder.stat().st_mtime > max_age_s:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


@st.cache_resource
def clean_stale_uploads() -> int:
    """:func:`remove_stale_uploads` in the temporary folder, once per server process."""
    return remove_stale_uploads(Path(tempfile.gettempdir()))


def set_study(study: Study) -> None:
    """Make ``study`` the open study (the slice position, counted from 1, starts in the middle)."""
    st.session_state[STUDY] = study
    st.session_state[SLICE] = study.slices.shape[0] // 2 + 1
