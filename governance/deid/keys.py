"""The secret key and what is derived from it: remapped UIDs, patient pseudonyms and per-patient date shifts.

Everything is an HMAC-SHA256 of the input under the key, with a purpose label so that the same text used as a UID
and as a patient ID gives unrelated outputs. The same key always gives the same outputs, which is what keeps
studies, series and frames of reference linked across files, runs and machines; a different key gives outputs
that cannot be linked to the first. The key is never stored in the output: only a short fingerprint is.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from governance.deid.errors import DeidConfigError
from governance.secret_keys import MIN_KEY_BYTES, load_secret_key

KEY_FILE_ENV = "MEDVL_DEID_KEY_FILE"
KEY_ENV = "MEDVL_DEID_KEY"

UID_ROOT = "2.25."
SHIFT_DAYS_MIN = 365
SHIFT_DAYS_MAX = 3650


def load_key(key_file: str | Path | None = None) -> bytes:
    """Read the de-identification key.

    Looks at ``key_file``, then the file named by ``$MEDVL_DEID_KEY_FILE``, then the text of ``$MEDVL_DEID_KEY``.
    Surrounding whitespace is ignored, so a hex string with a trailing newline works.

    Raises:
        DeidConfigError: no key is configured, the file cannot be read, or the key is shorter than 16 bytes.
    """
    return load_secret_key(key_file, KEY_FILE_ENV, KEY_ENV, "de-identification key", DeidConfigError, "deid.key")


class KeyedHasher:
    """Keyed, deterministic replacements for identifiers.

    Args:
        key: the secret key (at least 16 bytes).
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def _digest(self, purpose: str, value: str) -> bytes:
        message = purpose.encode("ascii") + b"\0" + value.encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    @property
    def fingerprint(self) -> str:
        """16 hex digits that identify the key without revealing it (stored in the run ledger)."""
        return self._digest("fingerprint", "").hex()[:16]

    def uid(self, uid: str) -> str:
        """The replacement UID: ``2.25.`` and the decimal of the first 128 bits of the keyed hash (<= 44 chars)."""
        digest = self._digest("uid", uid.strip().rstrip("\0"))
        return UID_ROOT + str(int.from_bytes(digest[:16], "big"))

    def pseudonym(self, identity: str) -> str:
        """The replacement patient ID and name for a patient identity: ``ANON-`` and 16 hex digits."""
        return "ANON-" + self._digest("patient", identity).hex()[:16].upper()

    def day_shift(self, identity: str) -> int:
        """Days to add to every date of this patient: between -3650 and -365, the same for every study."""
        span = SHIFT_DAYS_MAX - SHIFT_DAYS_MIN + 1
        return -(SHIFT_DAYS_MIN + int.from_bytes(self._digest("dates", identity)[:8], "big") % span)
