"""The report of a de-identification run: ``OUT/deid_report.csv`` (one row per input file) and
``OUT/deid_report.json`` (counts per status, action totals, and the same rows), plus a one-line summary."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from governance.deid.dataset import COUNT_FIELDS
from governance.deid.outcome import DEIDENTIFIED, FAILED, QUARANTINED, SKIPPED, TEXT_MASKED, FileOutcome

REPORT_CSV = "deid_report.csv"
REPORT_JSON = "deid_report.json"
STATUSES = (DEIDENTIFIED, QUARANTINED, TEXT_MASKED, SKIPPED, FAILED)
TOTAL_FIELDS = (*COUNT_FIELDS, "phi_spans")
CSV_COLUMNS = ("file", "status", "output", "reason", *TOTAL_FIELDS)


@dataclass
class TreeSummary:
    """Counts of one run (including files finished by earlier, interrupted runs into the same output).

    Attributes:
        statuses: number of files per status.
        totals: action counts summed over all files.
        report_csv: path of the CSV report.
        report_json: path of the JSON report.
    """

    statuses: dict[str, int]
    totals: dict[str, int]
    report_csv: Path
    report_json: Path

    @property
    def failed(self) -> int:
        """Number of files that could not be de-identified."""
        return self.statuses[FAILED]

    def line(self) -> str:
        """One line for the terminal, e.g. ``deid: 12 files: 10 deidentified, ... ; report: OUT/deid_report.csv``."""
        parts = ", ".join(f"{self.statuses[s]} {s}" for s in STATUSES)
        return f"deid: {sum(self.statuses.values())} files: {parts}; report: {self.report_csv}"


def write_report(outcomes: list[FileOutcome], out_root: Path) -> TreeSummary:
    """Write the CSV and JSON reports for ``outcomes`` into ``out_root`` and return the summary."""
    rows = sorted(outcomes, key=lambda o: o.file)
    statuses = {status: sum(o.status == status for o in rows) for status in STATUSES}
    totals = {name: sum(o.counts.get(name, 0) for o in rows) for name in TOTAL_FIELDS}
    summary = TreeSummary(statuses, totals, out_root / REPORT_CSV, out_root / REPORT_JSON)
    with open(summary.report_csv, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for o in rows:
            writer.writerow({"file": o.file, "status": o.status, "output": o.output, "reason": o.reason,
                             **{name: o.counts.get(name, "") for name in TOTAL_FIELDS}})
    document = {"statuses": statuses, "totals": totals, "files": [asdict(o) for o in rows]}
    summary.report_json.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return summary
