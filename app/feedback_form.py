"""The reviewer's verdict on a finding: agree / disagree / uncertain and a comment, stored and audited."""

from __future__ import annotations

import streamlit as st

from app.auth import User
from app.feedback import VERDICTS, Feedback, FeedbackError, FeedbackStore
from app.model_choice import LoadedModel
from app.state import audit_event
from app.study import Study
from governance.audit import AuditLog
from medvl.infer.reading import Finding


def feedback_form(
    user: User, loaded: LoadedModel, study: Study, scores: list[Finding], store: FeedbackStore, audit: AuditLog
) -> None:
    """A form per finding; a submitted verdict goes to the feedback database and the audit log."""
    st.subheader("Your review")
    probabilities = {s.name: s.probability for s in scores}
    if not probabilities:
        st.info("The model offers no finding for this kind of study: there is nothing to review.")
        return
    with st.form("feedback", clear_on_submit=True):
        finding = st.selectbox("Finding", list(probabilities), key="feedback_finding")
        verdict = st.radio("Verdict", VERDICTS, horizontal=True, key="feedback_verdict")
        comment = st.text_area("Comment", key="feedback_comment")
        submitted = st.form_submit_button("Save review")
    if not submitted:
        return
    entry = Feedback(
        reviewer=user.name, model_name=loaded.name or str(loaded.model_dir), model_version=loaded.version,
        model_fingerprint=loaded.fingerprint, study_hash=study.study_hash, finding=finding, verdict=verdict,
        probability=probabilities[finding], comment=comment.strip(),
    )  # fmt: skip
    try:
        row_id = store.add(entry)
    except FeedbackError as exc:
        st.error(f"Not saved: {exc}")
        return
    audit_event(audit, user.name, "feedback.write", study.study_hash, feedback_id=row_id, finding=finding,
                verdict=verdict, model=loaded.label, model_fingerprint=loaded.fingerprint)  # fmt: skip
    st.success(f"Saved review #{row_id}: {verdict} with '{finding}'.")
