"""The login gate: a user-name / password form (users YAML), or Streamlit's OIDC login when it is configured.

OIDC is used when ``.streamlit/secrets.toml`` has an ``[auth]`` section (``redirect_uri``, ``cookie_secret``,
``client_id``, ``client_secret``, ``server_metadata_url``); the password form stays available for local accounts.
Failed password logins are throttled per user name and per client address, and lock a listed account after many
(:mod:`app.throttle`). Every login, failed, throttled or refused login, lock and logout goes to the audit log;
user names nobody has are logged as a short hash (they may be a password typed into the wrong field).

On every page run the session's user is checked against the users file again, so removing, locking or demoting a
user reaches their live sessions at once.
"""

from __future__ import annotations

import hashlib
import math

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from app.auth import User, UserStore
from app.state import USER, audit_event, current_user, login_throttle
from app.throttle import LoginThrottle
from governance.audit import AuditLog

MAX_NAME_CHARS = 200
FAILED_MESSAGE = "Wrong user name or password, or the account is locked."


def oidc_configured() -> bool:
    """True when Streamlit's secrets hold an ``[auth]`` section."""
    try:
        return "auth" in st.secrets
    except (FileNotFoundError, StreamlitSecretNotFoundError):
        return False


def audit_actor(store: UserStore, name: str) -> str:
    """How a typed user name is logged: as typed when it is a listed user, else ``unknown-user:`` and a hash."""
    if store.knows(name):
        return name
    return "unknown-user:" + hashlib.sha256(name.encode()).hexdigest()[:16]


def _start(user: User, audit: AuditLog) -> None:
    audit_event(audit, user.name, "auth.login", "review-app", role=user.role, method=user.method)
    st.session_state[USER] = user


def session_user(store: UserStore, audit: AuditLog) -> User | None:
    """The session's user as the users file says now (role changes applied); None, with the session ended and
    the reason shown, when they were removed or locked since they logged in."""
    user = current_user()
    if user is None:
        return None
    now = store.current(user)
    if now is None:
        st.session_state.clear()
        audit_event(audit, user.name, "auth.revoked", "review-app", method=user.method)
        st.error("Your account was removed or locked since you logged in; ask an administrator.")
        return None
    if now != user:
        st.session_state[USER] = now
    return now


def require_user(store: UserStore, audit: AuditLog) -> User:
    """The logged-in user (re-checked), or stop the page with a pointer to the login on the Home page."""
    user = session_user(store, audit)
    if user is None:
        st.warning("Please log in on the Home page first.")
        st.stop()
    return user


def _oidc_login(store: UserStore, audit: AuditLog) -> User | None:
    identity = store.oidc_identity(st.user.to_dict())
    if identity is None:
        audit_event(audit, "oidc-unverified", "auth.refused", "review-app", method="oidc", reason="no verified identity")
        st.error(f"Your identity provider did not confirm your {store.oidc_claim}; ask an administrator.")
        return None
    user = store.oidc_user(identity)
    if user is None:
        audit_event(audit, identity, "auth.refused", "review-app", method="oidc", reason="no role")
        st.error(f"{identity} has no role in this app; ask an administrator to add you.")
        return None
    _start(user, audit)
    return user


def _password_login(store: UserStore, audit: AuditLog, throttle: LoginThrottle, name: str, password: str) -> None:
    name = name.strip()[:MAX_NAME_CHARS]
    actor = audit_actor(store, name or "anonymous")
    keys = [f"user:{name}"] + ([f"client:{st.context.ip_address}"] if st.context.ip_address else [])
    wait = throttle.wait_s(*keys)
    if wait > 0:
        audit_event(audit, actor, "auth.throttled", "review-app", wait_s=math.ceil(wait))
        st.error(f"Too many failed logins: try again in {math.ceil(wait)} s.")
        return
    user = store.verify(name, password)
    if user is None:
        failures = throttle.failed(*keys)
        audit_event(audit, actor, "auth.failed", "review-app", method="password", failures=failures)
        if store.knows(name) and failures >= throttle.lock_after and not store.is_locked(name):
            store.set_locked(name, True)
            audit_event(audit, name, "auth.locked", "review-app", failures=failures)
        st.error(FAILED_MESSAGE)
        return
    throttle.clear(*keys)
    _start(user, audit)
    st.rerun()


def login_gate(store: UserStore, audit: AuditLog) -> User | None:
    """The logged-in user, or None after drawing the login form (the page should stop then)."""
    user = session_user(store, audit)
    if user is not None:
        return user
    if oidc_configured():
        if st.user.is_logged_in:
            return _oidc_login(store, audit)
        st.button("Log in with single sign-on", on_click=st.login, key="oidc_login")
    with st.form("login"):
        st.subheader("Log in")
        name = st.text_input("User name", key="login_name", max_chars=MAX_NAME_CHARS)
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        _password_login(store, audit, login_throttle(str(store.path)), name, password)
    return None


def logout_button(audit: AuditLog) -> None:
    """A sidebar button that ends the session (and the OIDC login, when there is one)."""
    user = current_user()
    if user is None:
        return
    if st.sidebar.button("Log out", key="logout"):
        audit_event(audit, user.name, "auth.logout", "review-app")
        st.session_state.clear()
        if user.method == "oidc":
            st.logout()
        st.rerun()
