"""The review app against a hostile user (issue 17): login timing, throttling and lockout, password rules, OIDC
claims, model choice, upload bombs and damaged zips, no tracebacks, CSV formulas, file modes, upload cleanup,
audited searches and roles re-checked on every page run. AppTest drives the pages; the model is a small untrained
one."""

from __future__ import annotations

import gzip
import io
import os
import stat
import statistics
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from app.auth import UserStore, check_password
from app.cli import streamlit_command
from app.feedback import FeedbackStore
from app.model_choice import MAX_LOADED_MODELS, allowed_local, cached_model
from app.state import UPLOAD_PREFIX, login_throttle, remove_stale_uploads
from app.throttle import LoginThrottle
from app.upload import UploadError, UploadLimits, open_upload
from governance.audit import AuditLog
from medvl.io.limits import MAX_DECODED_BYTES_ENV
from tests.app_support import APP_TIMEOUT, HOME_PAGE, PASSWORD, chest_png, login, zip_bytes
from tests.test_app_feedback import _entry

REPO = Path(__file__).resolve().parents[1]
ADMIN = "pages/2_Admin.py"
SIMILAR = "pages/1_Similar_cases.py"


def _entries(env: dict[str, str]) -> list[dict]:
    return list(AuditLog(env["MEDVL_REVIEW_AUDIT"]).entries())


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


# 1. login timing -------------------------------------------------------------------------------------------


def test_unknown_users_take_as_long_as_a_wrong_password(tmp_path):
    store = UserStore(tmp_path / "users.yaml")
    store.add("ann", PASSWORD)

    def median_s(name: str) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            assert store.verify(name, "not-the-password") is None
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    median_s("nobody")  # the placeholder hash is made on first use
    ratio = median_s("nobody") / median_s("ann")
    assert 0.5 < ratio < 2.0, f"unknown / known user time ratio {ratio:.2f}"


# 2. passwords, throttling, lockout --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [
        ("ann", "password", "common"),
        ("ann", "Password1", "common"),
        ("ann", "qwertyuiop", "common"),
        ("margaret", "margaret", "user name"),
        ("ann", "short", "too short"),
    ],
)
def test_weak_passwords_are_refused(tmp_path, name, password, message):
    with pytest.raises(ValueError, match=message):
        UserStore(tmp_path / "users.yaml").add(name, password)
    with pytest.raises(ValueError, match="e-mail"):
        check_password("ann", "jane.doe.longer", email="jane.doe.longer@hospital.org")
    check_password("ann", PASSWORD)


def test_throttle_delays_grow_per_key_and_reset_on_success():
    now = [0.0]
    throttle = LoginThrottle(free_attempts=2, base_delay_s=1.0, max_delay_s=8.0, max_keys=3, clock=lambda: now[0])
    assert [throttle.delay_s(n) for n in range(7)] == [0, 0, 1, 2, 4, 8, 8]
    for _ in range(3):
        throttle.failed("user:ann", "client:1.2.3.4")
    assert throttle.wait_s("user:ann") == 2.0 and throttle.wait_s("user:bob", "client:1.2.3.4") == 2.0
    assert throttle.wait_s("user:bob") == 0.0
    now[0] = 2.5
    assert throttle.wait_s("user:ann") == 0.0
    throttle.clear("user:ann", "client:1.2.3.4")
    assert throttle.wait_s("user:ann", "client:1.2.3.4") == 0.0
    for name in ("a", "b", "c", "d"):
        throttle.failed(f"user:{name}")
    assert len(throttle._failures) == 3 and "user:a" not in throttle._failures


def test_failed_logins_are_throttled_then_lock_the_account_until_an_admin_unlocks(review_env):
    now = [1000.0]
    throttle = login_throttle(review_env["MEDVL_REVIEW_USERS"])
    throttle.clock, throttle.lock_after = (lambda: now[0]), 4
    for _ in range(3):
        assert _errors(login(password="wrong-guess-123")) == ["Wrong user name or password, or the account is locked."]
    throttled = login(password=PASSWORD)
    assert _errors(throttled) == ["Too many failed logins: try again in 1 s."] and not throttled.file_uploader
    now[0] += 2
    login(password="wrong-guess-123")
    assert UserStore(review_env["MEDVL_REVIEW_USERS"]).is_locked("ann")
    now[0] += 60
    locked = login(password=PASSWORD)
    assert _errors(locked) == ["Wrong user name or password, or the account is locked."] and not locked.file_uploader
    actions = [e["action"] for e in _entries(review_env)]
    assert actions.count("auth.failed") == 5 and "auth.throttled" in actions and "auth.locked" in actions
    admin = login("root")
    admin.switch_page(ADMIN).run()
    unlock = [b for b in admin.button if b.label == "Unlock ann"]
    assert len(unlock) == 1
    unlock[0].click()
    admin.run()
    assert not UserStore(review_env["MEDVL_REVIEW_USERS"]).is_locked("ann")
    assert _entries(review_env)[-1]["action"] == "auth.unlock"
    assert login().file_uploader  # the success also cleared ann's failures


def test_unknown_names_are_audited_as_a_capped_hash(review_env):
    login(name="correct horse battery staple typed in the wrong field " * 40, password="x" * 8)
    login(name="ann", password="wrong-guess-123")
    first, second = (e["actor"] for e in _entries(review_env))
    assert first.startswith("unknown-user:") and len(first) < 40 and second == "ann"


def test_unlock_user_command(tmp_path, capsys):
    from medvl.cli import main

    users = tmp_path / "users.yaml"
    UserStore(users).add("ann", PASSWORD)
    UserStore(users).set_locked("ann", True)
    assert main(["review", "unlock-user", "ann", "--users", str(users), "--audit", str(tmp_path / "a.jsonl")]) == 0
    assert not UserStore(users).is_locked("ann")
    assert [e["action"] for e in AuditLog(tmp_path / "a.jsonl").entries()] == ["auth.unlock"]
    assert main(["review", "unlock-user", "nobody", "--users", str(users)]) == 2
    assert "no user 'nobody'" in capsys.readouterr().err


# 3. OIDC claims -------------------------------------------------------------------------------------------


def test_oidc_trusts_only_verified_email_and_never_maps_onto_local_names(tmp_path):
    path = tmp_path / "users.yaml"
    UserStore(path).add("root", PASSWORD, "admin", email="root@example.org")
    store = UserStore(path)
    assert store.oidc_identity({"email": "root@example.org", "sub": "root"}) is None
    assert store.oidc_identity({"email": "root@example.org", "email_verified": "true"}) is None
    assert store.oidc_identity({"email": "root@example.org", "email_verified": True}) == "root@example.org"
    assert store.oidc_user("root@example.org").is_admin
    assert store.oidc_user("root") is None  # a local user name is no identity (default role: none)
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "oidc_default_role": "reviewer", "oidc_claim": "upn"}))
    store = UserStore(path)
    assert store.oidc_identity({"upn": "root", "email": "x@y"}) == "root"
    impostor = store.oidc_user("root")
    assert impostor.role == "reviewer" and impostor.name == "oidc:root"
    path.write_text(yaml.safe_dump({**data, "oidc_claim": "sub"}))
    with pytest.raises(ValueError, match="oidc_claim"):
        UserStore(path)


# 4. model choice --------------------------------------------------------------------------------------------


def test_reviewers_choose_only_approved_models(review_env, review_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVL_REVIEW_APPROVED_MODELS", "models:/other@champion")
    monkeypatch.setenv("MEDVL_REVIEW_MODEL_ROOTS", str(review_model_dir.parent))
    reviewer = login()
    shown = list(reviewer.selectbox(key="model_ref").options)
    assert shown == [f"{review_model_dir.parent.name}/model", "models:/other@champion"] and "/tmp" not in shown[0]
    assert not [t for t in reviewer.text_input if t.key == "model_dir"] and not reviewer.radio
    admin = login("root")
    admin.radio(key="model_kind").set_value("Local checkpoint").run()
    messages = []
    for folder in ("/etc", "/root", str(tmp_path / "absent")):
        admin.text_input(key="model_dir").input(folder).run()
        messages.append(_errors(admin))
    assert messages[0] == messages[1] == messages[2] and "allowed folder" in messages[0][0]
    admin.text_input(key="model_dir").input(str(review_model_dir)).run()
    assert not admin.exception and not _errors(admin) and admin.file_uploader


def test_local_folders_must_resolve_under_a_root(tmp_path):
    root = tmp_path / "models"
    (root / "a").mkdir(parents=True)
    (root / "escape").symlink_to(tmp_path)
    assert allowed_local(str(root / "a"), (root,)) == (root / "a").resolve()
    assert allowed_local(str(root / "a" / ".." / ".."), (root,)) is None
    assert allowed_local(str(root / "escape"), (root,)) is None
    assert allowed_local(str(root / "a"), ()) is None


def test_loaded_models_are_bounded():
    assert cached_model._info.max_entries == MAX_LOADED_MODELS


# 5. upload bombs, 6. damaged zips and no tracebacks -----------------------------------------------------------


def _nifti_gz(shape: tuple[int, ...]) -> bytes:
    image = nib.Nifti1Image(np.zeros(shape, np.uint8), np.eye(4))
    return gzip.compress(image.to_bytes())


def test_gzip_bombs_are_refused_by_ratio_and_by_the_decoded_size_limit(tmp_path, monkeypatch):
    bomb = _nifti_gz((256, 256, 256))
    with pytest.raises(UploadError, match="decompression bomb"):
        open_upload("scan.nii.gz", bomb, tmp_path / "a")
    monkeypatch.setenv(MAX_DECODED_BYTES_ENV, "1M")
    with pytest.raises(UploadError, match="decompression bomb"):
        open_upload("scan.nii.gz", bomb, tmp_path / "b", UploadLimits(max_ratio=1e6))
    monkeypatch.delenv(MAX_DECODED_BYTES_ENV)
    rng = np.random.default_rng(0)
    volume = nib.Nifti1Image(rng.integers(0, 255, (32, 32, 8)).astype(np.uint8), np.eye(4))
    opened = open_upload("scan.nii.gz", gzip.compress(volume.to_bytes()), tmp_path / "c")
    assert opened.record.array.shape == (32, 32, 8)


def _damaged_zip() -> bytes:
    rng = np.random.default_rng(1)
    data = bytearray(zip_bytes({"a.dcm": bytes(rng.integers(0, 4, 200_000, dtype=np.uint8))}))
    start = 30 + len("a.dcm")
    for offset in range(start + 100, start + 400):
        data[offset] ^= 0x5A
    return bytes(data)


def test_damaged_zip_is_refused_with_a_message(tmp_path):
    with pytest.raises(UploadError, match="damaged"):
        open_upload("series.zip", _damaged_zip(), tmp_path / "x")
    with zipfile.ZipFile(io.BytesIO(_damaged_zip())) as archive, pytest.raises(zlib.error):
        archive.testzip()  # the input really is damaged, and zipfile says so with a zlib error


def test_damaged_zip_bad_settings_and_a_broken_audit_log_show_no_traceback(review_env, monkeypatch):
    at = login()
    at.file_uploader(key="upload").set_value(("series.zip", _damaged_zip(), "application/zip"))
    at.run()
    assert not at.exception and any("damaged" in e for e in _errors(at))
    monkeypatch.setenv("MEDVL_REVIEW_PROMPTS", "nonsense")
    for page in (None, SIMILAR, ADMIN):
        broken = AppTest.from_file(HOME_PAGE, default_timeout=APP_TIMEOUT)
        if page:
            broken.switch_page(page)
        broken.run()
        assert not broken.exception and any("misconfigured" in e for e in _errors(broken))
    monkeypatch.setenv("MEDVL_REVIEW_PROMPTS", "phantom")
    audit = Path(review_env["MEDVL_REVIEW_AUDIT"])
    audit.write_bytes(audit.read_bytes()[:-5])  # the last entry's write cut short
    refused = login()
    assert not refused.exception and any("audit log cannot be written" in e for e in _errors(refused))
    assert not refused.file_uploader  # the login did not happen unrecorded


def test_serve_hides_error_details_and_watches_no_files():
    command = streamlit_command(8501, 512)
    options = dict(zip(command[5::2], command[6::2], strict=True))
    assert options["--server.address"] == "127.0.0.1" and options["--client.showErrorDetails"] == "none"
    assert options["--server.fileWatcherType"] == "none" and options["--server.runOnSave"] == "false"
    assert options["--client.toolbarMode"] == "viewer"


# 7. CSV formulas, 9. file modes -------------------------------------------------------------------------------


def test_feedback_csv_neutralises_formulas_and_the_database_is_private(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
    assert stat.S_IMODE((tmp_path / "feedback.db").stat().st_mode) == 0o600
    comments = ['=HYPERLINK("http://evil","x")', "+1", "-2+3", "@SUM(A1)", "\tx", "fine = ok"]
    for comment in comments:
        store.add(_entry(comment=comment))
    text = store.to_csv()
    assert "'=HYPERLINK" in text and "\n'+1" not in text
    import csv

    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["comment"] for r in rows] == ["'" + c for c in comments[:5]] + ["fine = ok"]
    assert all(r["probability"] == "0.8" for r in rows)


# 10. uploads never stay on disk -------------------------------------------------------------------------------


def _upload_folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob(UPLOAD_PREFIX + "*"))


def test_uploads_are_deleted_once_opened_and_stale_folders_removed(review_env, tmp_path):
    before = _upload_folders()
    at = login()
    at.file_uploader(key="upload").set_value(("chest.png", chest_png(tmp_path / "c.png").read_bytes(), "image/png"))
    at.run()
    assert not at.exception and at.get("dataframe") and _upload_folders() == before
    stale, fresh = tmp_path / f"{UPLOAD_PREFIX}old", tmp_path / f"{UPLOAD_PREFIX}new"
    stale.mkdir()
    fresh.mkdir()
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert remove_stale_uploads(tmp_path) == 1 and not stale.exists() and fresh.exists()


# 11. roles re-checked, searches audited -----------------------------------------------------------------------


def test_removed_or_demoted_users_lose_access_in_live_sessions(review_env):
    users = Path(review_env["MEDVL_REVIEW_USERS"])
    ann = login()
    root = login("root")
    root.switch_page(ADMIN).run()
    assert root.get("download_button")
    data = yaml.safe_load(users.read_text())
    data["users"]["root"]["role"] = "reviewer"
    del data["users"]["ann"]
    users.write_text(yaml.safe_dump(data))
    root.run()
    assert _errors(root) == ["Only administrators can see this page."]
    ann.run()
    assert not ann.file_uploader and any("removed or locked" in e for e in _errors(ann))
    assert "auth.revoked" in [e["action"] for e in _entries(review_env)]


def test_similar_case_searches_are_audited(review_env, review_model_dir, tmp_path, monkeypatch):
    from medvl.cli import main

    assert main(["synth", "-o", str(tmp_path / "cohort"), "--n-2d", "4", "--size", "64", "-q"]) == 0
    assert main(["ingest", "phantom", str(tmp_path / "cohort"), "-o", str(tmp_path / "m.parquet"), "-q"]) == 0
    assert main(["cache", str(tmp_path / "m.parquet"), "-o", str(tmp_path / "cache"), "--size", "128", "-q"]) == 0
    assert main(["review", "index", "--model", str(review_model_dir), "--cache", str(tmp_path / "cache"),
                 "-o", str(tmp_path / "index")]) == 0  # fmt: skip
    monkeypatch.setenv("MEDVL_REVIEW_INDEX", str(tmp_path / "index"))
    at = login()
    at.switch_page(SIMILAR).run()
    at.text_input(key="similar_text").input("large right pleural effusion").run()
    assert not at.exception
    search = [e for e in _entries(review_env) if e["action"] == "similar.search_text"]
    assert len(search) == 1 and search[0]["actor"] == "ann"
    assert search[0]["details"]["query"] == "large right pleural effusion"
