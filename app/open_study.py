"""Opening a study: an uploaded file (checked by :mod:`app.upload`) or a study picked from a manifest.

Every opened study is written to the audit log (actor = reviewer, subject = the study's content hash) before it is
shown. An upload is written to a private temporary folder only while it is checked and loaded, and deleted then.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.auth import User
from app.settings import AppSettings
from app.state import audit_event, current_study, set_study, upload_folder
from app.study import Study, build_study, describe, path_hash
from app.upload import UploadError, UploadLimits, open_upload
from governance.audit import AuditLog
from medvl.data.manifest import ManifestError, read_manifest, resolve_path
from medvl.io import MedvlIOError, load

MAX_LISTED = 2000


@st.cache_data(show_spinner=False)
def manifest_studies(path: str) -> list[tuple[str, str]]:
    """``(study_id, absolute path of its first image)`` of a manifest's studies that have images."""
    df = read_manifest(path)
    return [(row.study_id, str(resolve_path(df, row.images[0]["path"]))) for row in df.itertuples() if len(row.images)]


def _opened(study: Study, user: User, audit: AuditLog) -> None:
    audit_event(audit, user.name, "study.open", study.study_hash, **describe(study))
    set_study(study)


def _from_upload(settings: AppSettings, user: User, audit: AuditLog) -> None:
    upload = st.file_uploader("Upload a study", key="upload",
                              help="A DICOM file (any name), a zip of one DICOM series, NIfTI, NRRD, PNG or JPEG; checked by content.")  # fmt: skip
    if upload is None:
        return
    current = current_study()
    if current is not None and current.source == "upload" and st.session_state.get("upload_id") == upload.file_id:
        return
    with upload_folder() as folder:
        try:
            opened = open_upload(upload.name, upload.getvalue(), folder, UploadLimits(settings.max_upload_bytes))
        except UploadError as exc:
            st.error(f"Cannot open this upload. {exc}")
            return
        study = build_study(opened.record, opened.path, upload.name, "upload", opened.study_hash)
    st.session_state["upload_id"] = upload.file_id
    _opened(study, user, audit)


def _from_manifest(settings: AppSettings, user: User, audit: AuditLog) -> None:
    try:
        studies = manifest_studies(str(settings.manifest))
    except ManifestError as exc:
        st.error(f"Cannot read the manifest: {exc}")
        return
    ids = [sid for sid, _ in studies[:MAX_LISTED]]
    chosen = st.selectbox("Study", ids, index=None, placeholder="Pick a study", key="manifest_study")
    if chosen is None:
        return
    current = current_study()
    if current is not None and current.source == "manifest" and current.name == chosen:
        return
    path = dict(studies)[chosen]
    try:
        record = load(path)
    except MedvlIOError as exc:
        st.error(f"Cannot open study {chosen}: {exc.reason}")
        return
    _opened(build_study(record, Path(path), chosen, "manifest", path_hash(Path(path))), user, audit)


def open_study_panel(settings: AppSettings, user: User, audit: AuditLog) -> Study | None:
    """Upload / manifest controls; returns the open study (None until one is opened)."""
    sources = ["Upload"] + (["Manifest"] if settings.manifest else [])
    source = st.radio("Open a study from", sources, horizontal=True, key="study_source") if len(sources) > 1 else "Upload"
    if source == "Upload":
        _from_upload(settings, user, audit)
    else:
        _from_manifest(settings, user, audit)
    return current_study()
