"""The run ledger that makes ``medvl deid`` resumable: ``OUT/deid_ledger.jsonl``.

The first line records the settings (key fingerprint, options); each further line is the outcome of one finished
input file, appended after its output was renamed into place. A rerun skips the files whose latest outcome is
not ``failed``, so a killed run completes where it stopped. A last line cut short by a kill is dropped on open.
A rerun with another key or other options is refused: mixing them in one output tree would break the links
between studies.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from governance.deid.errors import DeidConfigError
from governance.deid.outcome import FAILED, FileOutcome

LEDGER_NAME = "deid_ledger.jsonl"
LEDGER_FORMAT = "medvl-deid-ledger/1"


class Ledger:
    """An append-only record of finished files, opened for one run.

    Args:
        path: the ledger file; created with ``settings`` as its header when absent.
        settings: what must not change between runs into the same output (JSON-serialisable).

    Raises:
        DeidConfigError: the ledger was written with other settings, or is damaged.
    """

    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        self.path = path
        self.outcomes: dict[str, FileOutcome] = {}
        header = {"format": LEDGER_FORMAT, **settings}
        if path.exists():
            self._load(header)
        else:
            path.write_text(json.dumps(header) + "\n", encoding="utf-8")
        self._handle = open(path, "a", encoding="utf-8")

    def _load(self, header: dict[str, Any]) -> None:
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            data = data[: data.rfind(b"\n") + 1]
            with open(self.path, "r+b") as handle:
                handle.truncate(len(data))
        lines = data.decode("utf-8").splitlines()
        try:
            found = json.loads(lines[0]) if lines else None
            records = [json.loads(line) for line in lines[1:]]
        except json.JSONDecodeError as exc:
            raise DeidConfigError(self.path, f"damaged ledger ({exc}); use a new output folder") from exc
        if found != header:
            differences = sorted(k for k in header if not isinstance(found, dict) or found.get(k) != header[k])
            raise DeidConfigError(
                self.path,
                f"this output folder was started with other settings ({', '.join(differences)}); "
                "rerun with the same key and options, or use a new output folder",
            )
        for record in records:
            outcome = FileOutcome(**record)
            self.outcomes[outcome.file] = outcome

    def finished(self) -> set[str]:
        """Input files whose latest outcome is final (anything but ``failed``)."""
        return {name for name, outcome in self.outcomes.items() if outcome.status != FAILED}

    def record(self, outcome: FileOutcome) -> None:
        """Append one outcome and hand it to the operating system (it survives the process being killed)."""
        self._handle.write(json.dumps(asdict(outcome)) + "\n")
        self._handle.flush()
        self.outcomes[outcome.file] = outcome

    def close(self) -> None:
        """Close the ledger file."""
        self._handle.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
