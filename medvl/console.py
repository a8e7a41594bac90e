"""What the command-line programs print: their own progress and results, not third-party chatter.

:func:`quiet_third_party_output` turns off MLflow's per-download progress bars ("Downloading artifacts", several
before ``medvl lineage`` prints anything); a user who wants them back sets the variable themselves.
"""

from __future__ import annotations

import os

QUIET_DEFAULTS = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def quiet_third_party_output() -> None:
    """Set :data:`QUIET_DEFAULTS` in the environment, keeping any value the user set."""
    for name, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(name, value)
