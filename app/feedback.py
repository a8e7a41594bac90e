"""Reviewer feedback on findings, stored with SQLAlchemy 2 (SQLite by default, any database URL).

One row per verdict: reviewer, model name / version / fingerprint, study hash, finding, the probability shown,
agree, disagree or uncertain, comment, UTC time. Several reviewers (processes) may write at once: SQLite runs in
WAL mode with a busy timeout, and a write that still meets a locked database is retried, so nothing is lost. A
SQLite file is created readable by its owner only.

The CSV export neutralises spreadsheet formulas (OWASP "CSV injection"): a text cell that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return gets a leading ``'``, so a comment such as ``=HYPERLINK(...)`` stays text.
"""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Float, Integer, String, Text, create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

VERDICTS = ("agree", "disagree", "uncertain")
CSV_COLUMNS = (
    "id", "created_at", "reviewer", "model_name", "model_version", "model_fingerprint", "study_hash", "finding",
    "probability", "verdict", "comment",
)  # fmt: skip
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
WRITE_ATTEMPTS = 20
SQLITE_BUSY_MS = 30_000


class FeedbackError(ValueError):
    """A feedback entry that cannot be stored (bad field, unreachable database); names the field or URL."""


class Base(DeclarativeBase):
    """Declarative base of the feedback tables."""


class FeedbackRow(Base):
    """One stored verdict."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reviewer: Mapped[str] = mapped_column(String(200), index=True)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(100))
    model_fingerprint: Mapped[str] = mapped_column(String(64))
    study_hash: Mapped[str] = mapped_column(String(64), index=True)
    finding: Mapped[str] = mapped_column(String(200))
    probability: Mapped[float | None] = mapped_column(Float, nullable=True)
    verdict: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text, default="")


@dataclass(frozen=True)
class Feedback:
    """A verdict to store (see :class:`FeedbackStore.add`)."""

    reviewer: str
    model_name: str
    model_version: str
    model_fingerprint: str
    study_hash: str
    finding: str
    verdict: str
    probability: float | None = None
    comment: str = ""

    def check(self) -> None:
        """Raise :class:`FeedbackError` naming the first invalid field."""
        for name in ("reviewer", "study_hash", "finding", "model_fingerprint"):
            if not str(getattr(self, name)).strip():
                raise FeedbackError(f"feedback.{name}: must not be empty")
        if self.verdict not in VERDICTS:
            raise FeedbackError(f"feedback.verdict: {self.verdict!r} is not one of {VERDICTS}")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise FeedbackError(f"feedback.probability: {self.probability} is not in [0, 1]")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder created, WAL mode and a busy timeout."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///")).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # SQLite's -wal and -shm files take this mode
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class FeedbackStore:
    """Feedback in the database at ``url`` (tables are created on first use).

    Args:
        url: a SQLAlchemy URL, e.g. ``sqlite:///review/feedback.db`` or ``postgresql+psycopg://...``.

    Raises:
        FeedbackError: the database cannot be reached or created.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        try:
            self._retry(lambda: Base.metadata.create_all(self.engine))
        except OperationalError as exc:
            raise FeedbackError(f"{url}: cannot open the feedback database ({exc.orig})") from exc

    @staticmethod
    def _retry(action: Any) -> Any:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return action()
            except OperationalError as exc:
                if "locked" not in str(exc.orig).lower() or attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        return None

    def add(self, feedback: Feedback) -> int:
        """Store one verdict (time = now, UTC) and return its id.

        Raises:
            FeedbackError: a field is invalid.
        """
        feedback.check()

        def write() -> int:
            with Session(self.engine) as session, session.begin():
                row = FeedbackRow(created_at=datetime.now(UTC), **feedback.__dict__)
                session.add(row)
                session.flush()
                return row.id

        return self._retry(write)

    def rows(self, study_hash: str | None = None) -> list[dict[str, Any]]:
        """All stored verdicts (of one study when ``study_hash`` is given), oldest first, as dicts."""
        query = select(FeedbackRow).order_by(FeedbackRow.id)
        if study_hash is not None:
            query = query.where(FeedbackRow.study_hash == study_hash)
        with Session(self.engine) as session:
            return [{c: getattr(r, c) for c in CSV_COLUMNS} for r in session.scalars(query)]

    def to_csv(self) -> str:
        """Every verdict as CSV text (header :data:`CSV_COLUMNS`, times in ISO-8601 UTC, formulas neutralised)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in self.rows():
            created = row["created_at"]
            row["created_at"] = (created if created.tzinfo else created.replace(tzinfo=UTC)).isoformat()
            writer.writerow({k: safe_cell(v) for k, v in row.items()})
        return buffer.getvalue()


def safe_cell(value: Any) -> Any:
    """``value`` for a CSV cell: text that a spreadsheet would run as a formula gets a leading ``'``."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value
