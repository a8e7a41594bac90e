"""De-identifying a whole folder tree into a mirrored output tree, resumably, with a report.

``OUT`` receives the de-identified files at the same relative paths as in ``IN``, quarantined images under
``OUT/quarantine/``, the ledger (``deid_ledger.jsonl``) and the reports (``deid_report.csv`` / ``.json``).
Folder and file names are copied as they are: they must not carry PHI.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from governance.deid.dicom_file import QUARANTINE_DIR
from governance.deid.errors import DeidConfigError
from governance.deid.files import process_file
from governance.deid.keys import KeyedHasher
from governance.deid.ledger import LEDGER_NAME, Ledger
from governance.deid.outcome import FAILED, FileOutcome
from governance.deid.report import REPORT_CSV, REPORT_JSON, TreeSummary, write_report

RESERVED_TOP_LEVEL = frozenset({QUARANTINE_DIR, LEDGER_NAME, REPORT_CSV, REPORT_JSON})

_worker_setup: tuple[Path, Path, KeyedHasher, bool] | None = None


def _check_folders(in_root: Path, out_root: Path) -> None:
    if not in_root.is_dir():
        raise DeidConfigError(in_root, "input folder not found")
    if out_root == in_root or out_root.is_relative_to(in_root) or in_root.is_relative_to(out_root):
        raise DeidConfigError(out_root, f"output folder must lie outside the input folder {in_root} and not contain it")
    if out_root.exists() and not out_root.is_dir():
        raise DeidConfigError(out_root, "output path exists and is not a folder")


def list_inputs(in_root: Path) -> list[str]:
    """Every regular file under ``in_root``, as sorted POSIX paths relative to it."""
    return sorted(p.relative_to(in_root).as_posix() for p in in_root.rglob("*") if p.is_file())


def _init_worker(in_root: Path, out_root: Path, key: bytes, allow_burned_in: bool) -> None:
    global _worker_setup
    _worker_setup = (in_root, out_root, KeyedHasher(key), allow_burned_in)


def _work(rel: str) -> FileOutcome:
    assert _worker_setup is not None, "worker not initialised"
    in_root, out_root, hasher, allow_burned_in = _worker_setup
    return process_file(in_root, out_root, rel, hasher, allow_burned_in)


def _outcomes(todo: list[str], in_root: Path, out_root: Path, key: bytes, allow_burned_in: bool,
              workers: int) -> Iterator[FileOutcome]:
    if workers <= 1:
        _init_worker(in_root, out_root, key, allow_burned_in)
        yield from map(_work, todo)
        return
    chunksize = max(1, min(16, len(todo) // (workers * 8)))
    with multiprocessing.Pool(workers, _init_worker, (in_root, out_root, key, allow_burned_in)) as pool:
        yield from pool.imap_unordered(_work, todo, chunksize=chunksize)


def deidentify_tree(in_dir: str | Path, out_dir: str | Path, key: bytes, *, allow_burned_in: bool = False,
                    workers: int = 1, progress: bool = True) -> TreeSummary:
    """De-identify every file under ``in_dir`` into ``out_dir`` (see :mod:`governance.deid.files`).

    Resumable: files already recorded in ``out_dir``'s ledger are skipped, failed ones are retried.

    Args:
        in_dir: the input folder.
        out_dir: the output folder (created; must lie outside ``in_dir``).
        key: the secret key (see :func:`governance.deid.keys.load_key`).
        allow_burned_in: write images that may carry burned-in text to the main tree instead of quarantine.
        workers: processes working in parallel (1 = in this process).
        progress: show a progress bar.

    Returns:
        The summary of every file in the tree, including those finished by earlier runs.

    Raises:
        DeidConfigError: bad folders, or ``out_dir`` was started with another key or other options.
    """
    in_root, out_root = Path(in_dir).resolve(), Path(out_dir).resolve()
    _check_folders(in_root, out_root)
    if workers < 1:
        raise DeidConfigError("--workers", f"must be at least 1, not {workers}")
    hasher = KeyedHasher(key)
    out_root.mkdir(parents=True, exist_ok=True)
    settings = {"key_fingerprint": hasher.fingerprint, "allow_burned_in": allow_burned_in}
    with Ledger(out_root / LEDGER_NAME, settings) as ledger:
        finished = ledger.finished()
        inputs = list_inputs(in_root)
        pending = [rel for rel in inputs if rel not in finished]
        reserved = [rel for rel in pending if rel.split("/")[0] in RESERVED_TOP_LEVEL]
        todo = [rel for rel in pending if rel not in reserved]
        with tqdm(total=len(inputs), initial=len(inputs) - len(pending), unit="file", desc="deid",
                  disable=not progress) as bar:
            for rel in reserved:
                ledger.record(FileOutcome(rel, FAILED, reason="name reserved for the output's own files; rename it"))
                bar.update()
            for outcome in _outcomes(todo, in_root, out_root, key, allow_burned_in, workers):
                ledger.record(outcome)
                bar.update()
        return write_report(list(ledger.outcomes.values()), out_root)
