"""The ``medvl`` command line: one subcommand per job.

Built-in subcommands live in ``medvl.cli.<name>`` modules. Packages above the library (``governance``,
``pipelines``) add subcommands through the ``medvl.commands`` entry-point group, so the library never
imports them. Every command module exposes ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``, and imports what its work needs inside those functions: ``medvl --help`` imports the
command modules only, and only the chosen command's ``add_arguments`` runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib.metadata import entry_points
from types import ModuleType

from medvl.console import quiet_third_party_output

BUILTIN_COMMANDS = (
    "inspect", "ingest", "cache", "synth", "label", "tokenizer", "pretrain", "calibrate", "embed", "predict",
    "sync-runs",
)


def _command_modules() -> dict[str, ModuleType]:
    modules: dict[str, ModuleType] = {}
    for name in BUILTIN_COMMANDS:
        module_name = f"medvl.cli.{name.replace('-', '_')}"
        try:
            modules[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
    for ep in entry_points(group="medvl.commands"):
        try:
            modules[ep.name] = ep.load()
        except ImportError as exc:  # a broken plugin must not take the whole CLI down
            print(f"medvl: skipping command '{ep.name}' ({ep.value}): {exc}", file=sys.stderr)
    return dict(sorted(modules.items()))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand; only ``command``'s arguments are added."""
    parser = argparse.ArgumentParser(
        prog="medvl",
        description="medvl: medical vision-language learning. Run 'medvl COMMAND --help' for each command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _command_modules().items():
        doc = (module.__doc__ or module.HELP).strip()
        p = sub.add_parser(name, help=module.HELP, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == command:
            module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``medvl`` console script; returns the exit status (1 when the reader of the output
    goes away early, as in ``medvl inspect --json | head``)."""
    quiet_third_party_output()
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = parse_with_overrides(build_parser(command), argv)
    return _run_parsed(args, f"medvl {args.command}")


def run_as_program(module: ModuleType, prog: str, argv: list[str] | None = None) -> int:
    """Run one command module as a program of its own: the ``benchx`` and ``pipelines`` console scripts are
    ``medvl benchx`` and ``medvl pipelines`` under another name."""
    quiet_third_party_output()
    parser = argparse.ArgumentParser(prog=prog, description=module.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    parser.set_defaults(_run=module.run)
    return _run_parsed(parse_with_overrides(parser, argv), prog)


def parse_with_overrides(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, except that ``key=value`` overrides may also follow the options (``medvl pretrain
    RECIPE --resume train.steps=50``): they join the command's ``overrides``."""
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in item and not item.startswith("-") for item in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _run_parsed(args: argparse.Namespace, name: str) -> int:
    from medvl.errors import EXIT_BAD_INPUT, MedvlError

    try:
        status = int(args._run(args) or 0)
        sys.stdout.flush()
    except MedvlError as exc:  # bad input: one line; anything else is a bug and keeps its traceback
        print(f"{name}: " + " ".join(str(exc).splitlines()), file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
