"""The decoded-size limit: refuse an input whose declared decoded size is too large, before decoding it.

A small compressed file (``.nii.gz``, deflated or JPEG DICOM) can declare gigabytes of voxels. Every reader
checks the declared decoded size (the bytes of the float32 array medvl would return: voxels x channels x 4)
against :func:`max_decoded_bytes` before it allocates, and gzip / deflate streams are inflated in chunks
(:func:`check_gzip_stream`, :func:`check_deflated_stream`) so a bomb is refused without holding it in memory.
The limit comes from the ``MEDVL_MAX_DECODED_BYTES`` environment variable (``medvl inspect/ingest/cache
--max-decoded-bytes`` set it), else :data:`DEFAULT_MAX_DECODED_BYTES`.
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path
from typing import BinaryIO

from medvl.io.errors import CorruptFileError, MedvlIOError

MAX_DECODED_BYTES_ENV = "MEDVL_MAX_DECODED_BYTES"
DEFAULT_MAX_DECODED_BYTES = 2 * 1024**3
"""2 GiB: the float32 array of a 512 x 512 x 2048 volume, a whole-body thin-slice CT or a breast tomosynthesis
stack with room to spare. Loading needs a few times the array's size at its peak (stored values, decoder buffers),
so this keeps a load within a workstation's or a shared server's memory; raise it for larger data."""

_CHUNK = 1 << 20
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)


class DecodedSizeError(MedvlIOError):
    """The declared (or inflated) decoded size exceeds the limit of :func:`max_decoded_bytes`, or memory ran out
    while decoding."""


def parse_size(text: str) -> int:
    """Bytes from ``"1073741824"``, ``"512M"``, ``"4G"`` (binary units; ``K``/``M``/``G``/``T``, ``B``/``iB``
    optional). Raises ``ValueError`` for anything else."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (use bytes, or a number with K, M, G or T, e.g. 512M, 4G)")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def max_decoded_bytes() -> int:
    """The limit: ``$MEDVL_MAX_DECODED_BYTES`` when set (``ValueError`` naming it when malformed), else 2 GiB."""
    value = os.environ.get(MAX_DECODED_BYTES_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_DECODED_BYTES
    try:
        return parse_size(value)
    except ValueError as exc:
        raise ValueError(f"{MAX_DECODED_BYTES_ENV}: {exc}") from None


def check_decoded_size(path: str | Path, nbytes: int, limit: int | None = None) -> None:
    """Refuse ``path`` when its declared decoded size ``nbytes`` exceeds ``limit`` (default: the configured one).

    Raises:
        DecodedSizeError: the size, the limit and how to raise it.
    """
    limit = max_decoded_bytes() if limit is None else limit
    if nbytes > limit:
        raise DecodedSizeError(
            path, f"declares {_human(nbytes)} of decoded data, over the limit{_advice(limit)}"
        )


def check_gzip_stream(path: str | Path, limit: int | None = None) -> None:
    """Inflate a gzip file in 1 MiB chunks (never holding it) and refuse it when it inflates beyond ``limit``.

    Raises:
        DecodedSizeError: the inflated size exceeds the limit.
        CorruptFileError: not gzip, corrupt or truncated gzip data.
    """
    with open(path, "rb") as handle:
        _check_inflated(path, handle, 16 + zlib.MAX_WBITS, "gzip", limit)


def check_deflated_stream(path: str | Path, handle: BinaryIO, limit: int | None = None) -> None:
    """Like :func:`check_gzip_stream` for a raw deflate stream read from ``handle``'s position to its end (the
    dataset of a Deflated Explicit VR Little Endian DICOM file, which pydicom inflates in one piece)."""
    _check_inflated(path, handle, -zlib.MAX_WBITS, "deflated", limit)


def _check_inflated(path: str | Path, handle: BinaryIO, wbits: int, kind: str, limit: int | None) -> None:
    limit = max_decoded_bytes() if limit is None else limit
    members = wbits > 0  # gzip files may be several members end to end; a raw deflate stream is one
    total, inflater = 0, None
    try:
        while chunk := handle.read(_CHUNK):
            while chunk:
                if inflater is None or inflater.eof:
                    inflater = zlib.decompressobj(wbits)
                total += len(inflater.decompress(chunk, _CHUNK))
                if total > limit:
                    raise DecodedSizeError(path, f"{kind} data inflates beyond the limit{_advice(limit)}")
                if inflater.eof:
                    chunk = inflater.unused_data if members else b""
                else:
                    chunk = inflater.unconsumed_tail
            if inflater.eof and not members:
                break
        while inflater is not None and not inflater.eof and (rest := inflater.decompress(b"", _CHUNK)):
            total += len(rest)  # output still held back when the input ran out exactly at a chunk's end
            if total > limit:
                raise DecodedSizeError(path, f"{kind} data inflates beyond the limit{_advice(limit)}")
    except zlib.error as exc:
        raise CorruptFileError(path, f"{kind} data cannot be decompressed: {exc}") from exc
    if inflater is None or not inflater.eof:
        raise CorruptFileError(
            path, f"{kind} data ends before its end-of-stream marker (truncated or empty file)"
        )


def _human(nbytes: int) -> str:
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        scale = _UNITS[unit[0]]
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit} ({nbytes} bytes)"
    return f"{nbytes} bytes"


def _advice(limit: int) -> str:
    return (
        f" of {_human(limit)}; to accept it, raise {MAX_DECODED_BYTES_ENV} (e.g. 8G) or pass "
        "--max-decoded-bytes to the medvl command"
    )
