"""The review app's flows with Streamlit's AppTest: login, upload, findings, attribution target, feedback,
bad uploads, volumes, admin export. The model is a small untrained one: these tests check the app, not the model."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app.feedback import FeedbackStore
from governance.audit import AuditLog, verify
from tests.app_support import (
    chest_png,
    ct_series,
    dicom_radiograph,
    login,
    zip_bytes,
)
from tests.test_app_feedback import _entry


def _upload(at: AppTest, name: str, data: bytes, mime: str = "application/octet-stream") -> AppTest:
    at.file_uploader(key="upload").set_value((name, data, mime))
    at.run()
    return at


def _actions(env: dict[str, str]) -> list[str]:
    return [e["action"] for e in AuditLog(env["MEDVL_REVIEW_AUDIT"]).entries()]


def test_wrong_password_is_refused_and_audited(review_env):
    at = login(password="not-the-password")
    assert not at.exception
    assert [e.value for e in at.error] == ["Wrong user name or password, or the account is locked."]
    assert not at.file_uploader
    assert _actions(review_env) == ["auth.failed"]


def test_upload_findings_attribution_and_feedback(review_env, tmp_path):
    at = login()
    assert not at.exception and at.file_uploader
    _upload(at, "chest.png", chest_png(tmp_path / "c.png").read_bytes(), "image/png")
    assert not at.exception and not at.error
    findings = next(df.value for df in at.dataframe if "probability" in df.value.columns)
    assert set(findings["finding"]) == {"Cardiomegaly", "Enlarged Cardiomediastinum", "Lung Opacity", "Lung Lesion",
                                        "Consolidation", "Pneumothorax", "Pleural Effusion",
                                        "No Finding"}  # fmt: skip
    assert findings["probability"].between(0, 1).all() and findings["probability"].is_monotonic_decreasing
    prompts = next(df.value for df in at.dataframe if "negative" in df.value.columns)
    assert "There is no pneumothorax." in set(prompts["negative"])
    assert set(findings["call"]) == {"-"}  # a model saved without calibration makes no calls
    at.selectbox(key="target").select("Pleural Effusion")
    at.slider(key="opacity").set_value(0.8)
    at.run()
    assert [c.value for c in at.caption if c.value.startswith("Orientation")] == [
        "Orientation unknown: the file carries no patient geometry."
    ]
    at.text_input(key="query").input("a small left pleural effusion")
    at.run()
    assert "query: a small left pleural effusion" in at.selectbox(key="target").options
    at.selectbox(key="feedback_finding").select("Pleural Effusion")
    at.radio(key="feedback_verdict").set_value("disagree")
    at.text_area(key="feedback_comment").input("no effusion visible")
    next(b for b in at.button if b.label == "Save review").click()
    at.run()
    assert [s.value for s in at.success] == ["Saved review #1: disagree with 'Pleural Effusion'."]
    (row,) = FeedbackStore(review_env["MEDVL_REVIEW_DB"]).rows()
    assert (row["reviewer"], row["finding"], row["verdict"], row["comment"]) == (
        "ann", "Pleural Effusion", "disagree", "no effusion visible")
    assert _actions(review_env) == ["auth.login", "study.open", "feedback.write"]
    entries = list(AuditLog(review_env["MEDVL_REVIEW_AUDIT"]).entries())
    assert entries[1]["subject"] == entries[2]["subject"] == row["study_hash"]
    assert verify(review_env["MEDVL_REVIEW_AUDIT"]).ok


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.txt", b"not an image at all\n" * 20, "NotAnImageError"),
        ("cut.dcm", b"\0" * 128 + b"DICM" + b"\x02\x00", "Error"),
        ("bomb.zip", zip_bytes({"a.dcm": b"\0" * (4 * 2**20)}), "zip bomb"),
        ("evil.zip", zip_bytes({"../../evil.dcm": b"x"}), "path traversal"),
    ],
)
def test_bad_uploads_show_a_message_and_the_app_keeps_running(review_env, tmp_path, name, data, message):
    at = _upload(login(), name, data)
    assert not at.exception
    assert len(at.error) == 1 and message in at.error[0].value and name in at.error[0].value
    _upload(at, "chest.png", chest_png(tmp_path / "c.png").read_bytes(), "image/png")
    assert not at.exception and not at.error and any("probability" in df.value.columns for df in at.dataframe)


def test_oversized_upload_is_refused(review_env, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVL_REVIEW_MAX_UPLOAD_MB", "0.001")
    at = _upload(login(), "chest.png", chest_png(tmp_path / "c.png", size=256).read_bytes(), "image/png")
    assert not at.exception and "limit is 0 MB" in at.error[0].value


def test_dicom_volume_shows_slices_relevance_and_no_identifiers(review_env, tmp_path):
    files = ct_series(tmp_path / "series", depth=6)
    at = _upload(login(), "series.zip", zip_bytes({p.name: p.read_bytes() for p in files}), "application/zip")
    assert not at.exception and not at.error
    assert (at.slider(key="slice_index").min, at.slider(key="slice_index").max) == (1, 6)
    assert any(c.value.startswith("Per-slice relevance, the model's slice-pooling attention") for c in at.caption)
    findings = set(next(df.value for df in at.dataframe if "probability" in df.value.columns)["finding"])
    assert "Kidney Cyst" in findings and "Cardiomegaly" not in findings  # a CT is read for volume findings only
    top = [b for b in at.button if b.label.startswith("Top slice")]
    assert len(top) == 3
    top[0].click()
    at.run()
    assert at.slider(key="slice_index").value == int(top[0].label.split()[-1])
    assert [c.value for c in at.caption if c.value.startswith("Top:")] == ["Top: A · Bottom: P · Left: R · Right: L"]
    shown = " ".join(str(v) for t in at.table for v in t.value.to_numpy().ravel())
    assert "CT" in shown and "DOE" not in shown and "MRN" not in shown
    assert "PatientName" in at.warning[0].value and "DOE" not in at.warning[0].value
    assert "window" in [s.key for s in at.selectbox]
    at.selectbox(key="window").select("lung")
    at.run()
    assert not at.exception


def test_dicom_radiograph_opens_with_geometry_labels(review_env, tmp_path):
    at = _upload(login(), "x.dcm", dicom_radiograph(tmp_path / "x.dcm").read_bytes())
    assert not at.exception and not at.error
    assert any(c.value.startswith("Top:") for c in at.caption)


def test_admin_page_exports_feedback_and_reviewers_are_kept_out(review_env):
    FeedbackStore(review_env["MEDVL_REVIEW_DB"]).add(_entry())
    admin = login("root")
    admin.switch_page("pages/2_Admin.py").run()
    assert not admin.exception
    assert admin.get("download_button")[0].proto.label == "Download feedback CSV"
    assert any(df.value["finding"].tolist() == ["Pleural Effusion"] for df in admin.dataframe if "finding" in df.value)
    assert any(s.value.startswith("Hash chain intact") for s in admin.success)
    reviewer = login("ann")
    reviewer.switch_page("pages/2_Admin.py").run()
    assert [e.value for e in reviewer.error] == ["Only administrators can see this page."]
