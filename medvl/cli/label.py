"""Label report text with the findings labeller (CheXpert's 14 observations by default).

INPUT is a medvl manifest (.parquet), a CSV file with a report text column, a plain text file (one report per
paragraph) or the IU X-ray archive (NLMCXR_reports.tgz or its folder; --source iu-xray). FINDINGS and
IMPRESSION are labelled (manifests fall back to the report column; free text with section headings is reduced
to those sections). The output CSV has an `id` column and one column per observation: 1 (present),
0 (absent), -1 (uncertain) or empty (not mentioned).

Examples:
  medvl label ../shared/data/iu_reports/NLMCXR_reports.tgz --source iu-xray -o labels.csv
  medvl label cohort/manifest.parquet -o labels.csv --label-space my_findings.yaml
  medvl label notes.csv --text-column clinical_notes --id-column patientid -o labels.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

HELP = "label findings (1/0/-1) in reports from a manifest, CSV, text file or the IU X-ray archive"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medvl label``."""
    from medvl.data.corpus import SOURCES

    parser.add_argument("input", type=Path, help="manifest (.parquet), CSV, text file, or IU X-ray archive/folder")
    parser.add_argument("-o", "--output", type=Path, required=True, help="CSV file to write (id + one column per observation)")
    parser.add_argument("--source", choices=SOURCES, help="input kind (default: guessed from the file name)")
    parser.add_argument("--text-column", help="CSV column holding the report text (default: report/text/note/...)")
    parser.add_argument("--id-column", help="CSV column holding the report id (default: id/study_id/report_id/row number)")
    parser.add_argument("--label-space", type=Path, help="YAML file with observations to add to the default label space")
    parser.add_argument(
        "--replace-label-space",
        action="store_true",
        help="use --label-space instead of the default CheXpert observations rather than extending them",
    )
    parser.add_argument(
        "--mentions", type=Path, help="also write every mention with its offsets and status to this JSON-lines file"
    )
    parser.add_argument("--whole-text", action="store_true", help="label the whole text, not only FINDINGS + IMPRESSION")


def run(args: argparse.Namespace) -> int:
    """Label the input and write the CSV; exit status 2 with one line on stderr for bad input."""
    from tqdm import tqdm

    from medvl.data.corpus import read_reports
    from medvl.text.errors import LabelSpaceError, ReportSourceError
    from medvl.text.labeller import Labeller
    from medvl.text.labels import LabelSpace

    if args.replace_label_space and args.label_space is None:
        return _fail("--replace-label-space needs --label-space FILE")
    try:
        space = LabelSpace.from_yaml(args.label_space, extend=not args.replace_label_space) if args.label_space else None
        reports = read_reports(args.input, args.source, args.text_column, args.id_column, focus=not args.whole_text)
    except (ReportSourceError, LabelSpaceError) as exc:
        return _fail(str(exc))
    labeller = Labeller(space)
    columns = labeller.observations
    args.output.parent.mkdir(parents=True, exist_ok=True)
    mentions_file = args.mentions.open("w", encoding="utf-8") if args.mentions else None
    counts = dict.fromkeys(columns, 0)
    try:
        with args.output.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", *columns])
            for report in tqdm(reports, desc="labelling", unit="report", disable=None):
                labels = labeller.label(report.text)
                writer.writerow([report.id, *(labels.get(name, "") for name in columns)])
                for name, value in labels.items():
                    counts[name] += value == 1
                if mentions_file is not None:
                    found = [m.__dict__ for m in labeller.mentions(report.text)]
                    mentions_file.write(json.dumps({"id": report.id, "text": report.text, "mentions": found}) + "\n")
    finally:
        if mentions_file is not None:
            mentions_file.close()
    summary = ", ".join(f"{name} {n}" for name, n in counts.items() if n)
    print(f"labelled {len(reports)} reports -> {args.output} (positives: {summary or 'none'})")
    return 0


def _fail(message: str) -> int:
    print(f"medvl label: error: {message}", file=sys.stderr)
    return 2
