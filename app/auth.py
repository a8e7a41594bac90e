"""Reviewer accounts: a YAML file of users with bcrypt-hashed passwords and roles, checked at login.

File layout (``medvl review add-user`` writes it)::

    users:
      alice: {password_hash: "$2b$12$...", role: reviewer, email: alice@hospital.org}
      bob:   {password_hash: "$2b$12$...", role: admin, locked: true}
    oidc_default_role: none      # role of OIDC users not listed here (reviewer, admin or none = refused)
    oidc_claim: email            # the identity claim matched against the users' ``email``

With Streamlit's OIDC login (an ``[auth]`` section in ``.streamlit/secrets.toml``) the identity comes from the
provider: the ``oidc_claim`` claim (``email`` by default, trusted only when the provider sets ``email_verified``),
matched against the users' ``email`` fields, never against local user names or the ``sub`` claim. A listed user
gets their role, anyone else ``oidc_default_role``.

A ``locked`` user (too many failed logins, see :mod:`app.throttle`) cannot log in until an administrator unlocks
them (``medvl review unlock-user NAME``).
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import yaml

ROLES = ("reviewer", "admin")
NO_ROLE = "none"
MIN_PASSWORD_LENGTH = 8
MIN_PASSWORD_SCORE = 2
BCRYPT_MAX_BYTES = 72
BCRYPT_ROUNDS = 12
DEFAULT_OIDC_CLAIM = "email"


class AuthConfigError(ValueError):
    """The users file is missing, unreadable or breaks the layout; the message names the file and entry."""


@dataclass(frozen=True)
class User:
    """A logged-in user: name, role (``reviewer`` or ``admin``), how they logged in (``password``/``oidc``) and,
    for OIDC, the verified identity they logged in with."""

    name: str
    role: str
    method: str = "password"
    identity: str = ""

    @property
    def is_admin(self) -> bool:
        """True for administrators (feedback export, audit view, local model folders)."""
        return self.role == "admin"


@functools.cache
def _dummy_hash() -> bytes:
    """A hash of the same cost as real ones, checked for unknown users so that they take as long."""
    return bcrypt.hashpw(b"timing-equaliser", bcrypt.gensalt(rounds=BCRYPT_ROUNDS))


def _check_length(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password.encode()) > BCRYPT_MAX_BYTES:
        raise ValueError(f"password too long: bcrypt uses at most {BCRYPT_MAX_BYTES} bytes")


def hash_password(password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    """A bcrypt hash of ``password`` (salted; ``rounds`` is the cost factor).

    Raises:
        ValueError: shorter than :data:`MIN_PASSWORD_LENGTH` characters or longer than bcrypt's 72 bytes.
    """
    _check_length(password)
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def check_password(name: str, password: str, email: str | None = None) -> None:
    """Refuse a password that is too short or long, equal to the user name, or easy to guess (zxcvbn's
    common-password lists, dictionary words and patterns, scored with the name and e-mail as known inputs).

    Raises:
        ValueError: the password is refused; the message says why.
    """
    from zxcvbn import zxcvbn

    _check_length(password)
    known = [v for v in (name, email, (email or "").split("@")[0]) if v]
    if password.casefold() in {v.casefold() for v in known}:
        raise ValueError("password refused: it equals the user name or e-mail address")
    verdict = zxcvbn(password, user_inputs=known)
    if verdict["score"] < MIN_PASSWORD_SCORE:
        reason = verdict["feedback"]["warning"] or "it is easy to guess"
        raise ValueError(f"password refused: {reason.rstrip('.').lower()}; use a longer phrase of unrelated words")


class UserStore:
    """The users of a YAML file (see the module docstring).

    Args:
        path: the users file; it need not exist yet (no one can log in then).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        data = self._read()
        self.users: dict[str, dict[str, Any]] = data["users"]
        self.oidc_default_role: str = data["oidc_default_role"]
        self.oidc_claim: str = data["oidc_claim"]

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"users": {}, "oidc_default_role": NO_ROLE, "oidc_claim": DEFAULT_OIDC_CLAIM}
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise AuthConfigError(f"{self.path}: cannot read the users file ({exc})") from exc
        users = data.get("users") or {}
        if not isinstance(users, dict):
            raise AuthConfigError(f"{self.path}: 'users' must map user names to entries")
        for name, entry in users.items():
            if not isinstance(entry, dict) or not str(entry.get("password_hash", "")).startswith("$2"):
                raise AuthConfigError(f"{self.path}: user '{name}' needs a bcrypt 'password_hash' (use medvl review add-user)")
            if entry.get("role") not in ROLES:
                raise AuthConfigError(f"{self.path}: user '{name}': role must be one of {ROLES}, got {entry.get('role')!r}")
        default_role = data.get("oidc_default_role", NO_ROLE)
        if default_role not in (*ROLES, NO_ROLE):
            raise AuthConfigError(f"{self.path}: oidc_default_role must be one of {(*ROLES, NO_ROLE)}")
        claim = data.get("oidc_claim", DEFAULT_OIDC_CLAIM)
        if not isinstance(claim, str) or not claim or claim == "sub":
            raise AuthConfigError(f"{self.path}: oidc_claim must name an identity claim other than 'sub' (default "
                                  f"{DEFAULT_OIDC_CLAIM})")  # fmt: skip
        return {"users": {str(k): v for k, v in users.items()}, "oidc_default_role": default_role, "oidc_claim": claim}

    def knows(self, name: str) -> bool:
        """True when ``name`` is a listed user."""
        return name.strip() in self.users

    def is_locked(self, name: str) -> bool:
        """True when the listed user ``name`` is locked."""
        return bool(self.users.get(name.strip(), {}).get("locked"))

    def verify(self, name: str, password: str) -> User | None:
        """The user when ``password`` matches the stored hash and the account is not locked, else None.

        Unknown users are checked against a hash of the same cost, so a wrong name takes as long as a wrong password.
        """
        entry = self.users.get(name.strip())
        stored = entry["password_hash"].encode() if entry else _dummy_hash()
        ok = bcrypt.checkpw(password.encode()[:BCRYPT_MAX_BYTES], stored)
        return User(name.strip(), entry["role"]) if ok and entry and not entry.get("locked") else None

    def oidc_identity(self, claims: Mapping[str, Any]) -> str | None:
        """The identity to trust from an OIDC login's claims: the ``oidc_claim`` claim, and for ``email`` only when
        the provider says ``email_verified``; None otherwise."""
        value = str(claims.get(self.oidc_claim) or "").strip()
        if not value or (self.oidc_claim == "email" and claims.get("email_verified") is not True):
            return None
        return value

    def oidc_user(self, identity: str) -> User | None:
        """The user for a trusted OIDC identity: the listed user whose ``email`` matches (their name and role),
        else ``oidc_default_role``; None when that is ``none`` or the matching user is locked."""
        for name, entry in self.users.items():
            if str(entry.get("email") or "").casefold() == identity.casefold():
                return None if entry.get("locked") else User(name, entry["role"], "oidc", identity)
        if self.oidc_default_role not in ROLES:
            return None
        name = f"oidc:{identity}" if identity in self.users else identity  # never taken for a local user
        return User(name, self.oidc_default_role, "oidc", identity)

    def current(self, user: User) -> User | None:
        """``user`` as the file says now: their present role, or None when removed or locked (checked on every
        page run, so an administrator's change reaches live sessions)."""
        if user.method == "oidc":
            return self.oidc_user(user.identity)
        entry = self.users.get(user.name)
        return None if entry is None or entry.get("locked") else User(user.name, entry["role"], user.method)

    def add(self, name: str, password: str, role: str = "reviewer", email: str | None = None) -> None:
        """Add or replace a user and write the file (atomically, readable by the owner only).

        Raises:
            ValueError: empty name, unknown role or a refused password (see :func:`check_password`).
        """
        name = name.strip()
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"user name {name!r}: use a non-empty name without spaces")
        if role not in ROLES:
            raise ValueError(f"role {role!r}: choose one of {', '.join(ROLES)}")
        check_password(name, password, email)
        entry: dict[str, Any] = {"password_hash": hash_password(password), "role": role}
        if email:
            entry["email"] = email
        self.users[name] = entry
        self._write()

    def set_locked(self, name: str, locked: bool) -> None:
        """Lock or unlock the listed user ``name`` and write the file.

        Raises:
            ValueError: ``name`` is not a listed user.
        """
        if name not in self.users:
            raise ValueError(f"{self.path}: no user {name!r}")
        entry = {k: v for k, v in self.users[name].items() if k != "locked"}
        self.users[name] = {**entry, "locked": True} if locked else entry
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"users": self.users, "oidc_default_role": self.oidc_default_role}
        if self.oidc_claim != DEFAULT_OIDC_CLAIM:
            data["oidc_claim"] = self.oidc_claim
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".users-", suffix=".yaml")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(yaml.safe_dump(data, sort_keys=True))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
