"""`medvl review`: help, refusals with exit status 2 and one line on stderr, and the similar-case index."""

from __future__ import annotations

import numpy as np
import pytest

from medvl.cli import main
from medvl.infer.model_ref import model_fingerprint
from medvl.infer.similar import SAME_IMAGE, EmbeddingIndex, SimilarIndexError
from tests.app_support import PASSWORD, app_env, save_small_model


def test_help_explains_the_subcommands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["review", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "serve" in out and "add-user" in out and "index" in out and "127.0.0.1" in out


def test_serve_refuses_bad_input_with_one_line(tmp_path, capsys):
    assert main(["review", "serve", "--users", str(tmp_path / "none.yaml")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("add a reviewer first with 'medvl review add-user NAME'")
    env = app_env(tmp_path, tmp_path)
    assert main(["review", "serve", "--users", env["MEDVL_REVIEW_USERS"], "--manifest", str(tmp_path / "x.parquet")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"medvl review: {tmp_path / 'x.parquet'}: no such manifest"
    assert main(["review", "serve", "--users", env["MEDVL_REVIEW_USERS"], "--max-upload-mb", "0"]) == 2
    assert "MAX_UPLOAD_MB" in capsys.readouterr().err
    assert PASSWORD not in (tmp_path / "users.yaml").read_text()


def test_index_builds_searches_and_refuses_another_model(tmp_path, capsys):
    model_dir = save_small_model(tmp_path / "model")
    assert main(["synth", "-o", str(tmp_path / "cohort"), "--n-2d", "8", "--size", "64", "-q"]) == 0
    assert main(["ingest", "phantom", str(tmp_path / "cohort"), "-o", str(tmp_path / "m.parquet"), "-q"]) == 0
    assert main(["cache", str(tmp_path / "m.parquet"), "-o", str(tmp_path / "cache"), "--size", "128", "-q"]) == 0
    assert main(["review", "index", "--model", str(model_dir), "--cache", str(tmp_path / "cache"),
                 "-o", str(tmp_path / "index")]) == 0  # fmt: skip
    index = EmbeddingIndex.load(tmp_path / "index", model_fingerprint(model_dir))
    assert len(index) == 8 and index.embeddings.shape[1] == 128
    assert set(index.table.columns) == {"study_id", "split", "path", "impression", "report"}
    first = index.table["study_id"][0]
    hits = index.nearest(index.embeddings[0], k=3)  # the query image itself is never its own neighbour
    assert first not in [h.study_id for h in hits] and len(hits) == 3 and all(h.score < SAME_IMAGE for h in hits)
    assert hits[0].report == index.table["report"][hits[0].row] and hits[0].report.strip()
    thumbnail = index.thumbnail(hits[0].row)
    assert thumbnail.dtype == np.uint8 and thumbnail.shape == (128, 128) and thumbnail.std() > 0
    other = index.table["study_id"][hits[0].row]
    assert other not in [h.study_id for h in index.nearest(index.embeddings[0], k=3, exclude=other)]
    with pytest.raises(SimilarIndexError, match="another model"):
        EmbeddingIndex.load(tmp_path / "index", "0" * 64)
    assert main(["review", "index", "--model", str(tmp_path / "nowhere"), "--cache", str(tmp_path / "cache"),
                 "-o", str(tmp_path / "i2")]) == 2  # fmt: skip
    assert "no such model folder" in capsys.readouterr().err


def test_stopping_serve_stops_streamlit_and_frees_the_port(tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys
    from pathlib import Path

    from tests.servers import free_port, wait_http

    env = app_env(tmp_path, tmp_path)
    port = free_port()
    serve = subprocess.Popen(
        [str(Path(sys.executable).with_name("medvl")), "review", "serve", "--users", env["MEDVL_REVIEW_USERS"],
         "--audit", str(tmp_path / "audit.jsonl"), "--port", str(port)],
        env={**os.environ, "HOME": str(tmp_path)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", 120, serve)
    except (RuntimeError, TimeoutError):
        serve.kill()
        pytest.fail(f"streamlit did not answer on port {port}: {serve.stderr.read()[-2000:]}")
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(timeout=60) == 0
    with socket.socket() as probe:  # nobody listens on the port any more: the server went with the wrapper
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
