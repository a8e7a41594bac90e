"""Reading secret keys (de-identification, audit log) from a file or an environment variable.

A key is at least :data:`MIN_KEY_BYTES` bytes; surrounding whitespace is ignored, so a hex string with a trailing
newline works. :func:`create_key_file` writes a fresh random key readable by its owner only.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

MIN_KEY_BYTES = 16
MAKE_KEY_HINT = "create one with: python -c 'import secrets; print(secrets.token_hex(32))' > {name}"


def config_dir() -> Path:
    """medvl's per-user configuration folder: ``$XDG_CONFIG_HOME/medvl``, else ``~/.config/medvl``."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "medvl"


def load_secret_key(
    key_file: str | Path | None, file_env: str, text_env: str, what: str, error: Callable[[str, str], Exception], hint_name: str
) -> bytes:
    """The key from ``key_file``, else the file named by ``$file_env``, else the text of ``$text_env``.

    Args:
        key_file: an explicit key file (a CLI option), or None.
        file_env: the variable naming a key file.
        text_env: the variable holding the key itself.
        what: what the key is for, for messages ("de-identification key").
        error: builds the exception to raise from ``(where, reason)``.
        hint_name: the file name suggested in the "create one with" hint.

    Raises:
        the exception built by ``error``: no key is configured, the file cannot be read, or the key is too short.
    """
    hint = MAKE_KEY_HINT.format(name=hint_name)
    source = key_file or os.environ.get(file_env)
    if source:
        try:
            key = Path(source).read_bytes().strip()
        except OSError as exc:
            raise error(str(source), f"cannot read the key file: {exc.strerror}") from exc
        where = str(source)
    elif os.environ.get(text_env):
        key = os.environ[text_env].strip().encode("utf-8")
        where = f"${text_env}"
    else:
        raise error("key", f"no {what}: pass --key-file, or set {file_env} or {text_env}; {hint}")
    if len(key) < MIN_KEY_BYTES:
        raise error(where, f"the key is {len(key)} bytes, at least {MIN_KEY_BYTES} are needed; {hint}")
    return key


def create_key_file(path: Path) -> bytes:
    """Write a new random key (64 hex digits) to ``path``, readable by its owner only, and return it.

    Raises:
        FileExistsError: ``path`` exists already (two processes raced; read it instead).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key
