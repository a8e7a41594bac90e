"""Reviewer accounts: a YAML file of users with bcrypt-hashed passwords and roles, checked at login.

File layout (``medvl review add-user`` writes it)::

    users:
      alice: {password_hash: "$2b$12$...", role: reviewer, email: alice@hospital.org}
      bob:   {password_hash: "$2b$12$...", role: admin}
    oidc_default_role: none      # role of OIDC users not listed here (reviewer, admin or none = refused)

With Streamlit's OIDC login (an ``[auth]`` section in ``.streamlit/secrets.toml``) the identity comes from the
provider; the role is the one of the user whose name or ``email`` matches, else ``oidc_default_role``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import yaml

ROLES = ("reviewer", "admin")
NO_ROLE = "none"
MIN_PASSWORD_LENGTH = 8
BCRYPT_MAX_BYTES = 72
_DUMMY_HASH = bcrypt.hashpw(b"timing-equaliser", bcrypt.gensalt(rounds=4))


class AuthConfigError(ValueError):
    """The users file is missing, unreadable or breaks the layout; the message names the file and entry."""


@dataclass(frozen=True)
class User:
    """A logged-in user: name, role (``reviewer`` or ``admin``) and how they logged in (``password``/``oidc``)."""

    name: str
    role: str
    method: str = "password"

    @property
    def is_admin(self) -> bool:
        """True for administrators (feedback export, audit view)."""
        return self.role == "admin"


def hash_password(password: str, rounds: int = 12) -> str:
    """A bcrypt hash of ``password`` (salted; ``rounds`` is the cost factor).

    Raises:
        ValueError: shorter than :data:`MIN_PASSWORD_LENGTH` characters or longer than bcrypt's 72 bytes.
    """
    encoded = password.encode()
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(encoded) > BCRYPT_MAX_BYTES:
        raise ValueError(f"password too long: bcrypt uses at most {BCRYPT_MAX_BYTES} bytes")
    return bcrypt.hashpw(encoded, bcrypt.gensalt(rounds=rounds)).decode()


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

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"users": {}, "oidc_default_role": NO_ROLE}
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
        return {"users": {str(k): v for k, v in users.items()}, "oidc_default_role": default_role}

    def verify(self, name: str, password: str) -> User | None:
        """The user when ``password`` matches the stored hash, else None (unknown users take as long)."""
        entry = self.users.get(name.strip())
        stored = entry["password_hash"].encode() if entry else _DUMMY_HASH
        ok = bcrypt.checkpw(password.encode()[:BCRYPT_MAX_BYTES], stored)
        return User(name.strip(), entry["role"]) if ok and entry else None

    def oidc_user(self, identity: str) -> User | None:
        """The user for an OIDC identity (email or subject): the listed role, else ``oidc_default_role``."""
        for name, entry in self.users.items():
            if identity in (name, entry.get("email")):
                return User(identity, entry["role"], "oidc")
        return User(identity, self.oidc_default_role, "oidc") if self.oidc_default_role in ROLES else None

    def add(self, name: str, password: str, role: str = "reviewer", email: str | None = None) -> None:
        """Add or replace a user and write the file (atomically, readable by the owner only).

        Raises:
            ValueError: empty name, unknown role or unacceptable password.
        """
        name = name.strip()
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"user name {name!r}: use a non-empty name without spaces")
        if role not in ROLES:
            raise ValueError(f"role {role!r}: choose one of {', '.join(ROLES)}")
        entry: dict[str, Any] = {"password_hash": hash_password(password), "role": role}
        if email:
            entry["email"] = email
        self.users[name] = entry
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump({"users": self.users, "oidc_default_role": self.oidc_default_role}, sort_keys=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".users-", suffix=".yaml")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
