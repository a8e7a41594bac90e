"""Administration: export all feedback as CSV, check and browse the audit log (administrators only)."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from app.settings import settings_from_env
from app.state import feedback_store, require_user
from governance.audit import AuditLogError, verify

AUDIT_TAIL = 50

st.title("Administration")
user = require_user()
if not user.is_admin:
    st.error("Only administrators can see this page.")
    st.stop()
settings = settings_from_env()
store = feedback_store(settings.db_url)
rows = store.rows()
st.subheader(f"Feedback ({len(rows)} verdicts)")
st.download_button("Download feedback CSV", store.to_csv(), file_name="feedback.csv", mime="text/csv", key="export")
st.dataframe(pd.DataFrame(rows), hide_index=True, key="feedback_rows")
st.subheader("Audit log")
if not settings.audit.exists():
    st.info("No audit entries yet.")
    st.stop()
try:
    result = verify(settings.audit)
except AuditLogError as exc:
    st.error(str(exc))
    st.stop()
if result.ok:
    st.success(f"Hash chain intact: {result.entries} entries.")
else:
    st.error(f"Audit log TAMPERED at line {result.first_bad_line}: {result.reason}")
entries = [json.loads(line) for line in settings.audit.read_text(encoding="utf-8").splitlines()[-AUDIT_TAIL:]]
st.dataframe(pd.DataFrame(entries)[["seq", "time", "actor", "action", "subject"]], hide_index=True, key="audit_rows")
