"""Run the clinician review app, manage its users, build its similar-case index.

  medvl review serve --model models:/radclip@champion --users review/users.yaml
  medvl review serve --model runs/pretrain/model --manifest cohort.parquet --index review/index --port 8502
  medvl review add-user alice --role reviewer          (asks for the password; or --password-stdin)
  medvl review unlock-user alice                       (after too many failed logins)
  medvl review index --model runs/pretrain/model --cache cache/cohort-128 -o review/index

serve starts Streamlit on 127.0.0.1 (headless, file watcher off, no error details shown to users) with the settings
passed as MEDVL_REVIEW_* variables; put a reverse proxy with TLS in front of it to serve other machines. Reviewers
choose among --model and the --approved-model references; administrators may also open checkpoint folders under a
--model-root. Feedback goes to --db (SQLite by default, any SQLAlchemy URL), every login, opened study, search and
feedback to the --audit log, keyed with --audit-key-file (default $MEDVL_AUDIT_KEY_FILE, else
~/.config/medvl/audit.key). Passwords are stored as bcrypt hashes; with an [auth] section in
.streamlit/secrets.toml users can also log in through OIDC.
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import subprocess
import sys
from pathlib import Path

from app.auth import ROLES, AuthConfigError, UserStore
from app.settings import AppSettings
from governance.audit import KEY_FILE_ENV, AuditLog, AuditLogError
from medvl.text.prompts import PROMPT_SETS

HELP = "run the clinician review app (Streamlit), add reviewers, build the similar-case index"
HOME = Path(__file__).with_name("Home.py")
STOP_TIMEOUT_S = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve``, ``add-user`` and ``index`` subcommands."""
    sub = parser.add_subparsers(dest="review_command", metavar="{serve,add-user,unlock-user,index}", required=True)
    defaults = AppSettings()
    serve = sub.add_parser("serve", help="start the review app on 127.0.0.1")
    serve.add_argument("--model", default=defaults.model,
                       help="models:/NAME@ALIAS, models:/NAME/VERSION, a model folder or a run folder "
                            f"(default {defaults.model})")  # fmt: skip
    serve.add_argument("--approved-model", action="append", default=[], metavar="REF",
                       help="a further model reviewers may choose (repeatable)")
    serve.add_argument("--model-root", action="append", default=[], type=Path, metavar="DIR",
                       help="a folder under which administrators may open local checkpoints (repeatable)")
    serve.add_argument("--tracking-uri", help="MLflow tracking URI for registry models (default: MLflow's own)")
    serve.add_argument("--users", type=Path, default=defaults.users, help=f"users YAML (default {defaults.users})")
    serve.add_argument("--db", default=defaults.db_url, help=f"feedback database URL (default {defaults.db_url})")
    serve.add_argument("--audit", type=Path, default=defaults.audit, help=f"audit log (default {defaults.audit})")
    serve.add_argument("--audit-key-file", type=Path, metavar="FILE",
                       help=f"key of the audit log's hash chain (default ${KEY_FILE_ENV}, else ~/.config/medvl/audit.key)")
    serve.add_argument("--manifest", type=Path, help="manifest whose studies can be picked in the app")
    serve.add_argument("--index", type=Path, help="similar-case index folder (from 'medvl review index')")
    serve.add_argument("--prompts", choices=PROMPT_SETS, default=defaults.prompts,
                       help="zero-shot prompt set: CheXpert-14 ensembles or the phantom prompts")
    serve.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_mb, help="largest upload in MB")
    serve.add_argument("--port", type=int, default=8501, help="port on 127.0.0.1 (default 8501)")
    add = sub.add_parser("add-user", help="add or replace a user (bcrypt-hashed password) in the users YAML")
    add.add_argument("name", help="user name (no spaces)")
    add.add_argument("--role", choices=ROLES, default="reviewer", help="reviewer (default) or admin")
    add.add_argument("--email", help="e-mail address, matched against OIDC logins")
    add.add_argument("--users", type=Path, default=defaults.users, help=f"users YAML (default {defaults.users})")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    unlock = sub.add_parser("unlock-user", help="unlock a user locked after too many failed logins")
    unlock.add_argument("name", help="user name")
    unlock.add_argument("--users", type=Path, default=defaults.users, help=f"users YAML (default {defaults.users})")
    unlock.add_argument("--audit", type=Path, default=defaults.audit,
                        help=f"audit log that records the unlock (default {defaults.audit})")
    index = sub.add_parser("index", help="embed a training cache into a similar-case index")
    index.add_argument("--model", required=True, help="model reference (as for serve)")
    index.add_argument("--tracking-uri", help="MLflow tracking URI for registry models")
    index.add_argument("--cache", type=Path, required=True, help="cache folder from 'medvl cache' at the model's size")
    index.add_argument("--split", choices=("train", "val", "test"), help="index only this split")
    index.add_argument("-o", "--out", type=Path, required=True, help="index folder to write")


def _fail(message: str) -> int:
    print(f"medvl review: {message}", file=sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = AppSettings(
            model=args.model, approved_models=tuple(args.approved_model), model_roots=tuple(args.model_root),
            tracking_uri=args.tracking_uri, users=args.users, db_url=args.db, audit=args.audit,
            manifest=args.manifest, index=args.index, prompts=args.prompts, max_upload_mb=args.max_upload_mb,
        )  # fmt: skip
        UserStore(settings.users)
    except (ValueError, AuthConfigError) as exc:
        return _fail(str(exc))
    if not settings.users.is_file():
        return _fail(f"{settings.users}: no users file; add a reviewer first with 'medvl review add-user NAME'")
    for path, what in ((settings.manifest, "manifest"), (settings.index, "index folder")):
        if path is not None and not path.exists():
            return _fail(f"{path}: no such {what}")
    command = streamlit_command(args.port, settings.max_upload_mb)
    env = {**os.environ, **settings.as_env()}
    if args.audit_key_file:
        if not args.audit_key_file.is_file():
            return _fail(f"{args.audit_key_file}: no such audit key file")
        env[KEY_FILE_ENV] = str(args.audit_key_file.resolve())
    print(f"medvl review: serving on http://127.0.0.1:{args.port} (Ctrl-C stops)", file=sys.stderr)
    return run_server(command, env)


def run_server(command: list[str], env: dict[str, str]) -> int:
    """Run the server in the foreground. SIGTERM and SIGINT are passed on to it, and it is stopped when this
    command ends, so stopping ``medvl review serve`` (a service manager, ``kill``, Ctrl-C) frees the port; returns
    0 after such a stop, else the server's exit status."""
    process = subprocess.Popen(command, env=env)
    stopped = []

    def forward(signum: int, _frame: object) -> None:
        stopped.append(signum)
        if process.poll() is None:
            process.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        status = process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return 0 if stopped else status


def streamlit_command(port: int, max_upload_mb: float) -> list[str]:
    """The Streamlit server command: 127.0.0.1 only, headless, no usage statistics, no file watcher or rerun on
    save, no error details or developer menu for users, uploads up to ``max_upload_mb``."""
    return [
        sys.executable, "-m", "streamlit", "run", str(HOME), "--server.address", "127.0.0.1",
        "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--server.maxUploadSize", str(max(1, round(max_upload_mb))), "--server.fileWatcherType", "none",
        "--server.runOnSave", "false", "--client.showErrorDetails", "none", "--client.toolbarMode", "viewer",
    ]  # fmt: skip


def _add_user(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            return _fail("the two passwords differ")
    try:
        UserStore(args.users).add(args.name, password, args.role, args.email)
    except (ValueError, AuthConfigError) as exc:
        return _fail(str(exc))
    print(f"{args.users}: {args.name} ({args.role}) saved")
    return 0


def _unlock_user(args: argparse.Namespace) -> int:
    try:
        store = UserStore(args.users)
        if not store.knows(args.name):
            return _fail(f"{args.users}: no user {args.name!r}")
        AuditLog(args.audit).append(getpass.getuser(), "auth.unlock", args.name, via="medvl review unlock-user")
        store.set_locked(args.name, False)
    except (ValueError, AuthConfigError, AuditLogError) as exc:
        return _fail(str(exc))
    print(f"{args.users}: {args.name} unlocked")
    return 0


def _index(args: argparse.Namespace) -> int:
    from medvl.data.cache import CacheError
    from medvl.infer.loading import load_for_inference
    from medvl.infer.model_ref import ModelRefError, model_fingerprint, resolve_model
    from medvl.infer.similar import EmbeddingIndex, SimilarIndexError

    try:
        resolved = resolve_model(args.model, tracking_uri=args.tracking_uri)
        model, prep = load_for_inference(resolved.model_dir)
        index = EmbeddingIndex.from_cache(model, args.cache, model_fingerprint(resolved.model_dir),
                                          expected_size=prep.size, split=args.split)  # fmt: skip
    except (ModelRefError, CacheError, SimilarIndexError) as exc:
        return _fail(str(exc))
    index.save(args.out)
    print(f"{args.out}: {len(index)} images of {index.table['study_id'].nunique()} studies indexed")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the chosen subcommand; returns the exit status (2 with a one-line reason on bad input)."""
    commands = {"serve": _serve, "add-user": _add_user, "unlock-user": _unlock_user, "index": _index}
    return commands[args.review_command](args)
