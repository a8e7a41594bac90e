"""The login gate: a user-name / password form (users YAML), or Streamlit's OIDC login when it is configured.

OIDC is used when ``.streamlit/secrets.toml`` has an ``[auth]`` section (``redirect_uri``, ``cookie_secret``,
``client_id``, ``client_secret``, ``server_metadata_url``); the password form stays available for local accounts.
Every login, failed login and logout goes to the audit log.
"""

from __future__ import annotations

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from app.auth import User, UserStore
from app.state import USER, current_user
from governance.audit import AuditLog


def oidc_configured() -> bool:
    """True when Streamlit's secrets hold an ``[auth]`` section."""
    try:
        return "auth" in st.secrets
    except (FileNotFoundError, StreamlitSecretNotFoundError):
        return False


def _oidc_identity() -> str | None:
    if not st.user.is_logged_in:
        return None
    return str(st.user.get("email") or st.user.get("sub") or "")


def _start(user: User, audit: AuditLog) -> None:
    st.session_state[USER] = user
    audit.append(user.name, "auth.login", "review-app", role=user.role, method=user.method)


def login_gate(store: UserStore, audit: AuditLog) -> User | None:
    """The logged-in user, or None after drawing the login form (the page should stop then)."""
    user = current_user()
    if user is not None:
        return user
    if oidc_configured():
        identity = _oidc_identity()
        if identity:
            user = store.oidc_user(identity)
            if user is None:
                audit.append(identity, "auth.refused", "review-app", method="oidc", reason="no role")
                st.error(f"{identity} has no role in this app; ask an administrator to add you.")
                return None
            _start(user, audit)
            return user
        st.button("Log in with single sign-on", on_click=st.login, key="oidc_login")
    with st.form("login"):
        st.subheader("Log in")
        name = st.text_input("User name", key="login_name")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        user = store.verify(name, password)
        if user is None:
            audit.append(name.strip() or "anonymous", "auth.failed", "review-app", method="password")
            st.error("Wrong user name or password.")
            return None
        _start(user, audit)
        st.rerun()
    return None


def logout_button(audit: AuditLog) -> None:
    """A sidebar button that ends the session (and the OIDC login, when there is one)."""
    user = current_user()
    if user is None:
        return
    if st.sidebar.button("Log out", key="logout"):
        audit.append(user.name, "auth.logout", "review-app")
        st.session_state.clear()
        if user.method == "oidc":
            st.logout()
        st.rerun()
