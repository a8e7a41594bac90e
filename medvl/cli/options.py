"""Options several commands share (not a command itself)."""

from __future__ import annotations

import argparse
import os

from medvl.io.limits import MAX_DECODED_BYTES_ENV, max_decoded_bytes, parse_size


def add_max_decoded_bytes(parser: argparse.ArgumentParser) -> None:
    """``--max-decoded-bytes SIZE``: the decoded-size limit of :mod:`medvl.io.limits` for this run."""
    parser.add_argument(
        "--max-decoded-bytes",
        metavar="SIZE",
        type=_size,
        help=f"refuse images whose decoded float32 array would exceed SIZE (bytes, or 512M, 4G...; default "
        f"${MAX_DECODED_BYTES_ENV}, else 1G); sets that variable for this run and its workers",
    )


def apply_max_decoded_bytes(args: argparse.Namespace) -> None:
    """Put ``--max-decoded-bytes`` into the environment (worker processes inherit it), then check the limit.

    Raises:
        ValueError: ``$MEDVL_MAX_DECODED_BYTES`` is not a size (named in the message).
    """
    if args.max_decoded_bytes is not None:
        os.environ[MAX_DECODED_BYTES_ENV] = str(args.max_decoded_bytes)
    max_decoded_bytes()


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
