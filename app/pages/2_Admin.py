"""Administration: unlock accounts, export all feedback as CSV, check and browse the audit log (administrators
only)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.login import require_user
from app.state import audit_event, feedback_store, login_throttle, services_or_stop
from governance.audit import AuditLog, AuditLogError, verify

AUDIT_TAIL = 50

st.title("Administration")
settings, users, audit = services_or_stop()
user = require_user(users, audit)
if not user.is_admin:
    st.error("Only administrators can see this page.")
    st.stop()
locked = [name for name in users.users if users.is_locked(name)]
if locked:
    st.subheader("Locked accounts")
    for name in locked:
        if st.button(f"Unlock {name}", key=f"unlock_{name}"):
            audit_event(audit, user.name, "auth.unlock", name)
            users.set_locked(name, False)
            login_throttle(str(users.path)).clear(f"user:{name}")
            st.rerun()
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
    where = f" at line {result.first_bad_line}" if result.first_bad_line is not None else ""
    st.error(f"Audit log TAMPERED{where}: {result.reason}")
try:
    entries = list(AuditLog(settings.audit).entries())[-AUDIT_TAIL:]
except AuditLogError as exc:
    st.error(exc.reason)
    st.stop()
st.dataframe(pd.DataFrame(entries, columns=["seq", "time", "actor", "action", "subject"]), hide_index=True,
             key="audit_rows")  # fmt: skip
