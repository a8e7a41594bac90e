"""Feedback database: fields, CSV export, and parallel writer processes that lose nothing."""

from __future__ import annotations

import csv
import io
import multiprocessing

import pytest

from app.feedback import CSV_COLUMNS, Feedback, FeedbackError, FeedbackStore

WRITERS, PER_WRITER = 4, 25


def _entry(reviewer: str = "ann", finding: str = "Pleural Effusion", verdict: str = "agree", **kw) -> Feedback:
    values = {"reviewer": reviewer, "model_name": "phantom-tiny", "model_version": "3", "model_fingerprint": "f" * 64,
              "study_hash": "a" * 64, "finding": finding, "verdict": verdict, "probability": 0.8, "comment": ""}
    return Feedback(**{**values, **kw})


def test_rows_keep_every_field_and_export_as_csv(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'sub' / 'fb.db'}")
    first = store.add(_entry(comment="effusion, left, small; \"quoted\""))
    second = store.add(_entry(reviewer="bob", verdict="disagree", probability=None, study_hash="b" * 64))
    assert second == first + 1
    rows = store.rows()
    assert [r["reviewer"] for r in rows] == ["ann", "bob"] and rows[1]["probability"] is None
    assert [r["id"] for r in store.rows(study_hash="b" * 64)] == [second]
    table = list(csv.DictReader(io.StringIO(store.to_csv())))
    assert tuple(table[0]) == CSV_COLUMNS
    assert table[0]["comment"] == "effusion, left, small; \"quoted\"" and table[0]["created_at"].endswith("+00:00")


@pytest.mark.parametrize(("field", "value"), [("verdict", "maybe"), ("reviewer", " "), ("probability", 1.5)])
def test_invalid_feedback_is_refused_naming_the_field(tmp_path, field, value):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    with pytest.raises(FeedbackError, match=f"feedback.{field}"):
        store.add(_entry(**{field: value}))
    assert store.rows() == []


def _write_many(url: str, writer: int) -> None:
    store = FeedbackStore(url)
    for i in range(PER_WRITER):
        store.add(_entry(reviewer=f"reviewer-{writer}", finding=f"finding-{i}"))


def test_parallel_writer_processes_lose_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'fb.db'}"
    FeedbackStore(url)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write_many, args=(url, w)) for w in range(WRITERS)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=240)
    assert [p.exitcode for p in processes] == [0] * WRITERS
    rows = FeedbackStore(url).rows()
    assert len(rows) == WRITERS * PER_WRITER
    assert {(r["reviewer"], r["finding"]) for r in rows} == {
        (f"reviewer-{w}", f"finding-{i}") for w in range(WRITERS) for i in range(PER_WRITER)
    }


def test_a_reviewer_may_be_uncertain(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.db'}")
    store.add(_entry(verdict="uncertain", comment="cannot tell on this view"))
    assert [r["verdict"] for r in store.rows()] == ["uncertain"]
