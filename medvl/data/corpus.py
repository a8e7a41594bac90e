"""Report texts with ids from the inputs ``medvl label`` and ``medvl tokenizer`` accept.

Sources (``source=None`` guesses from the path):

- ``manifest``: a medvl Parquet manifest (``.parquet``), read with :func:`medvl.data.manifest.read_manifest`;
  id = ``study_id``; text = FINDINGS + IMPRESSION, falling back to ``report``.
- ``csv``: a CSV file (``.csv``; ``.tsv`` tab-separated) with a text column (``--text-column``, else the first of
  ``report``, ``text``, ``note``, ``clinical_notes``, or ``findings`` + ``impression`` when both exist) and an id
  column (``--id-column``, else ``id``, ``study_id`` or ``report_id``, else the 1-based row number).
- ``iu-xray``: the IU X-ray archive (``NLMCXR_reports.tgz``, its folder, or one XML file); id = ``CXR<n>``.
- ``text``: a plain text file with one report per paragraph (reports separated by blank lines); id = 1-based
  paragraph number.

With ``focus=True`` (labelling) free text is reduced to its FINDINGS and IMPRESSION sections when it has such
headings (:func:`medvl.text.sections.split_sections`), so that an INDICATION such as "rule out pneumonia" is not
labelled; text without those headings is used whole. ``focus=False`` (tokenizer training) keeps every word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from medvl.data.manifest import ManifestError, read_manifest
from medvl.text.errors import ReportSourceError
from medvl.text.iu_xray import read_iu_reports
from medvl.text.sections import split_sections

SOURCES = ("manifest", "csv", "iu-xray", "text")
TEXT_COLUMNS = ("report", "text", "note", "clinical_notes")
ID_COLUMNS = ("id", "study_id", "report_id")
_PARAGRAPH = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class ReportText:
    """One report: its id and the text to label or train on."""

    id: str
    text: str


def detect_source(path: str | Path) -> str:
    """Guess the source kind of ``path`` from its suffix (or folder contents).

    Raises:
        ReportSourceError: the path does not exist or its kind cannot be guessed.
    """
    path = Path(path)
    if not path.exists():
        raise ReportSourceError(path, "no such file or folder")
    name = path.name.lower()
    if path.is_dir() or name.endswith((".tgz", ".tar.gz", ".tar", ".xml")):
        return "iu-xray"
    if name.endswith(".parquet"):
        return "manifest"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith((".txt", ".text")):
        return "text"
    raise ReportSourceError(path, f"cannot tell the input kind from the name; pass --source ({', '.join(SOURCES)})")


def read_reports(
    path: str | Path,
    source: str | None = None,
    text_column: str | None = None,
    id_column: str | None = None,
    focus: bool = True,
) -> list[ReportText]:
    """Reports of ``path`` as :class:`ReportText` (see the module docstring for the sources and ``focus``).

    Raises:
        ReportSourceError: missing file, unknown source, unreadable file, missing column, duplicate ids.
    """
    path = Path(path)
    source = source or detect_source(path)
    if source not in SOURCES:
        raise ReportSourceError(path, f"unknown source '{source}'; known: {', '.join(SOURCES)}")
    if not path.exists():
        raise ReportSourceError(path, "no such file or folder")
    if source == "iu-xray":
        reports = [
            ReportText(r.report_id, r.findings_impression if focus else r.text) for r in read_iu_reports(path)
        ]
    elif source == "manifest":
        reports = _from_manifest(path, focus)
    elif source == "csv":
        reports = _from_csv(path, text_column, id_column, focus)
    else:
        reports = _from_text_file(path, focus)
    _check_unique(path, reports)
    return reports


def focus_text(text: str) -> str:
    """FINDINGS + IMPRESSION of a free-text report when it has those headings, else the whole text."""
    sections = split_sections(text)
    parts = [sections[name] for name in ("findings", "impression") if name in sections]
    return "\n\n".join(parts) if parts else text.strip()


def _from_manifest(path: Path, focus: bool) -> list[ReportText]:
    try:
        df = read_manifest(path)
    except ManifestError as exc:
        raise ReportSourceError(path, str(exc)) from exc
    reports = []
    for study_id, report, findings, impression in zip(
        df["study_id"], df["report"], df["findings"], df["impression"], strict=True
    ):
        sections = "\n\n".join(part for part in (findings or "", impression or "") if part.strip())
        if focus:
            text = sections or focus_text(report or "")
        else:
            text = report or sections
        reports.append(ReportText(str(study_id), text))
    return reports


def _from_csv(path: Path, text_column: str | None, id_column: str | None, focus: bool) -> list[ReportText]:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise ReportSourceError(path, f"not a readable CSV file ({exc})") from exc
    columns = list(df.columns)
    if text_column is not None:
        if text_column not in columns:
            raise ReportSourceError(path, f"no text column '{text_column}'; columns are {columns}")
        texts = list(df[text_column])
    elif "findings" in columns and "impression" in columns:
        texts = [f"FINDINGS: {f}\n\nIMPRESSION: {i}" for f, i in zip(df["findings"], df["impression"], strict=True)]
    else:
        found = next((c for c in TEXT_COLUMNS if c in columns), None)
        if found is None:
            raise ReportSourceError(path, f"no report text column among {columns}; name it with --text-column")
        texts = list(df[found])
    if id_column is not None and id_column not in columns:
        raise ReportSourceError(path, f"no id column '{id_column}'; columns are {columns}")
    id_column = id_column or next((c for c in ID_COLUMNS if c in columns), None)
    ids = list(df[id_column]) if id_column else [str(i + 1) for i in range(len(df))]
    return [ReportText(str(i), focus_text(t) if focus else t) for i, t in zip(ids, texts, strict=True)]


def _from_text_file(path: Path, focus: bool) -> list[ReportText]:
    try:
        content = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as exc:
        raise ReportSourceError(path, f"not a readable UTF-8 text file ({exc})") from exc
    paragraphs = [p.strip() for p in _PARAGRAPH.split(content) if p.strip()]
    return [ReportText(str(i + 1), focus_text(p) if focus else p) for i, p in enumerate(paragraphs)]


def _check_unique(path: Path, reports: list[ReportText]) -> None:
    seen: set[str] = set()
    for report in reports:
        if report.id in seen:
            raise ReportSourceError(path, f"report id '{report.id}' appears more than once; pick another --id-column")
        seen.add(report.id)
