"""Reviewer accounts: bcrypt hashing, login checks, roles, OIDC mapping and the add-user command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
import yaml

from app.auth import AuthConfigError, UserStore, hash_password


def test_hash_is_salted_bcrypt_and_verifies():
    first, second = hash_password("s3cret-pass", rounds=4), hash_password("s3cret-pass", rounds=4)
    assert first.startswith("$2") and first != second
    assert bcrypt.checkpw(b"s3cret-pass", first.encode()) and not bcrypt.checkpw(b"wrong-pass", first.encode())
    with pytest.raises(ValueError, match="too short"):
        hash_password("short")
    with pytest.raises(ValueError, match="too long"):
        hash_password("x" * 73)


def test_store_writes_only_hashes_and_checks_passwords(tmp_path):
    path = tmp_path / "users.yaml"
    UserStore(path).add("ann", "ann-password", "reviewer")
    UserStore(path).add("root", "root-password", "admin", email="root@example.org")
    assert "ann-password" not in path.read_text() and oct(path.stat().st_mode)[-3:] == "600"
    store = UserStore(path)
    assert store.verify("ann", "ann-password").role == "reviewer"
    assert store.verify("root", "root-password").is_admin
    assert store.verify("ann", "root-password") is None
    assert store.verify("nobody", "ann-password") is None


def test_oidc_users_get_their_listed_role_or_the_default(tmp_path):
    path = tmp_path / "users.yaml"
    UserStore(path).add("root", "root-password", "admin", email="root@example.org")
    assert UserStore(path).oidc_user("root@example.org").role == "admin"
    assert UserStore(path).oidc_user("stranger@example.org") is None
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "oidc_default_role": "reviewer"}))
    assert UserStore(path).oidc_user("stranger@example.org").role == "reviewer"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("users: {ann: {password_hash: plain, role: reviewer}}", "bcrypt"),
        ("users: {ann: {password_hash: $2b$04$abc, role: boss}}", "role must be one of"),
        ("users: [ann]", "must map"),
        ("users: {}\noidc_default_role: god", "oidc_default_role"),
    ],
)
def test_bad_users_files_are_refused_with_the_entry_named(tmp_path, content, message):
    path = tmp_path / "users.yaml"
    path.write_text(content)
    with pytest.raises(AuthConfigError, match=message):
        UserStore(path)


def test_add_user_command_hashes_and_rejects_bad_input(tmp_path):
    users = tmp_path / "users.yaml"
    command = [str(Path(sys.executable).with_name("medvl")), "review", "add-user"]
    ok = subprocess.run([*command, "eve", "--role", "admin", "--users", str(users), "--password-stdin"],
                        input="eve-password\n", capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert UserStore(users).verify("eve", "eve-password").is_admin
    short = subprocess.run([*command, "max", "--users", str(users), "--password-stdin"],
                           input="short\n", capture_output=True, text=True, timeout=120)  # fmt: skip
    assert short.returncode == 2
    assert short.stderr.strip().splitlines()[-1] == "medvl review: password too short: use at least 8 characters"
