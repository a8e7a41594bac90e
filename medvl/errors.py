"""The root of every refusal a user can act on: bad settings, files, caches, manifests, model references.

Each subclass names the file or field and the reason. The command-line programs print one line for a
:class:`MedvlError` and exit with status 2 (``medvl.cli.main``); any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2


class MedvlError(Exception):
    """Bad input the user can fix; the message says which and why."""
