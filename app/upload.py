"""Uploaded files checked and put on disk where the medvl loaders can read them.

Accepted: a DICOM file, a zip of one DICOM series, NIfTI (``.nii``, ``.nii.gz``), NRRD, PNG, JPEG. Refused with
an :class:`UploadError` that says why (the app shows it and keeps running): an empty or oversized upload, a file
that is not an image, a corrupt DICOM, a damaged zip, a zip with a path that leaves the extraction folder, links,
too many members, a member or total size over the limit, or a compression ratio typical of a zip bomb. Zip members
are read in bounded chunks and counted as they are written, so a header that lies about sizes cannot get past the
limits; they are stored under generated names, so no member name ever becomes a path.

Gzip uploads (``.nii.gz``) are inflated in chunks before they are read, under the same ratio limit and medvl.io's
decoded-size limit (:func:`medvl.io.limits.max_decoded_bytes`); every image is then loaded under that limit, which
also bounds what a compressed DICOM or NIfTI header may declare.
"""

from __future__ import annotations

import hashlib
import io
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from medvl.io import ImageRecord, MedvlIOError, load
from medvl.io.limits import DecodedSizeError, check_gzip_stream, max_decoded_bytes

ZIP_MAGIC = b"PK\x03\x04"
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20
_SAFE_SUFFIX = re.compile(r"^(\.[A-Za-z0-9]{1,5}){1,2}$")


class UploadError(ValueError):
    """An upload the app refuses; ``str()`` is the message to show (it names the file and the reason)."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"{name}: {reason}")


@dataclass(frozen=True)
class UploadLimits:
    """Limits on one upload.

    Attributes:
        max_bytes: largest upload, and largest total unpacked size of a zip.
        max_members: most files in a zip.
        max_ratio: largest uncompressed / compressed size of a zip member or gzip file (bomb guard).
    """

    max_bytes: int = 512 * 1024 * 1024
    max_members: int = 5000
    max_ratio: float = 100.0


@dataclass(frozen=True)
class OpenedUpload:
    """An accepted upload: the loaded record, the path the loaders read, the content hash of the bytes."""

    name: str
    path: Path
    record: ImageRecord
    study_hash: str


def content_hash(data: bytes) -> str:
    """SHA-256 (hex) of the uploaded bytes: the study hash stored with feedback and audit entries."""
    return hashlib.sha256(data).hexdigest()


def safe_suffix(name: str) -> str:
    """The file's suffixes (``.nii.gz``) when they look like an extension, else ``""`` (DICOM without one)."""
    suffix = "".join(PurePosixPath(name).suffixes[-2:]).lower()
    return suffix if _SAFE_SUFFIX.match(suffix) else ""


def open_upload(name: str, data: bytes, workdir: Path, limits: UploadLimits = UploadLimits()) -> OpenedUpload:
    """Check an upload, write it (or extract it, for a zip) under ``workdir`` and load it.

    Args:
        name: the file name as uploaded (only its extension is used).
        data: the bytes.
        workdir: an empty folder owned by this session.
        limits: size, member-count and ratio limits.

    Raises:
        UploadError: the upload is refused; the message says why and what to do.
    """
    if not data:
        raise UploadError(name, "the file is empty")
    if len(data) > limits.max_bytes:
        raise UploadError(name, f"the file is {len(data) / 2**20:.1f} MB; the limit is {limits.max_bytes / 2**20:.0f} MB")
    workdir.mkdir(parents=True, exist_ok=True)
    if data[:4] == ZIP_MAGIC:
        path = extract_series(name, data, workdir / "series", limits)
    else:
        path = workdir / f"upload{safe_suffix(name)}"
        path.write_bytes(data)
        if data[:2] == GZIP_MAGIC:
            _check_gzip(name, path, len(data), limits)
    try:
        record = load(path)
    except MedvlIOError as exc:
        raise UploadError(name, _explain(exc)) from exc
    return OpenedUpload(name, path, record, content_hash(data))


def _check_gzip(name: str, path: Path, size: int, limits: UploadLimits) -> None:
    """Refuse gzip data that inflates beyond ``max_ratio`` times its size or medvl.io's decoded-size limit."""
    limit = min(max_decoded_bytes(), int(size * limits.max_ratio))
    try:
        check_gzip_stream(path, limit)
    except DecodedSizeError as exc:
        raise UploadError(name, f"the gzip data inflates beyond {limit / 2**20:.0f} MB ({limits.max_ratio:.0f}x the "
                          "upload, or the decoded-size limit): a decompression bomb? refused") from exc  # fmt: skip
    except MedvlIOError as exc:
        raise UploadError(name, _explain(exc)) from exc


def _explain(exc: MedvlIOError) -> str:
    """The loader's reason, without the temporary path, plus what the user can do."""
    hint = "upload a DICOM file, a zip of one DICOM series, NIfTI, NRRD, PNG or JPEG"
    return f"{exc.reason} ({type(exc).__name__}); {hint}"


def extract_series(name: str, data: bytes, target: Path, limits: UploadLimits) -> Path:
    """Extract the files of a zip into ``target`` under generated names, enforcing ``limits``.

    Raises:
        UploadError: not a readable zip, unsafe member names or types, too many members, too large, too
            compressed, or no file at all.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise UploadError(name, f"not a readable zip archive ({exc})") from exc
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        _check_members(name, members, limits)
        target.mkdir(parents=True, exist_ok=True)
        total = 0
        for number, member in enumerate(members):
            total = _extract_member(name, archive, member, target / f"{number:05d}.dcm", total, limits)
    return target


def _check_members(name: str, members: list[zipfile.ZipInfo], limits: UploadLimits) -> None:
    if not members:
        raise UploadError(name, "the zip holds no files; zip the folder of one DICOM series")
    if len(members) > limits.max_members:
        raise UploadError(name, f"the zip holds {len(members)} files; the limit is {limits.max_members}")
    for member in members:
        parts = PurePosixPath(member.filename.replace("\\", "/")).parts
        if member.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise UploadError(name, f"zip member '{member.filename}' points outside the archive (path traversal); refused")
        if stat.S_ISLNK(member.external_attr >> 16):
            raise UploadError(name, f"zip member '{member.filename}' is a symbolic link; refused")
        if member.flag_bits & 0x1:
            raise UploadError(name, f"zip member '{member.filename}' is encrypted; upload an unencrypted zip")
    declared = sum(m.file_size for m in members)
    if declared > limits.max_bytes:
        raise UploadError(name, f"the zip unpacks to {declared / 2**20:.0f} MB; the limit is {limits.max_bytes / 2**20:.0f} MB")


def _extract_member(
    name: str, archive: zipfile.ZipFile, member: zipfile.ZipInfo, out: Path, total: int, limits: UploadLimits
) -> int:
    """Copy one member in chunks, stopping as soon as a limit is crossed; returns the new running total."""
    try:
        return _copy_member(name, archive, member, out, total, limits)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise UploadError(name, f"zip member '{member.filename}' is damaged or uses an unsupported compression "
                          f"({exc}); zip the series again") from exc  # fmt: skip


def _copy_member(
    name: str, archive: zipfile.ZipFile, member: zipfile.ZipInfo, out: Path, total: int, limits: UploadLimits
) -> int:
    written = 0
    budget = max(member.compress_size, 1) * limits.max_ratio
    with archive.open(member) as source, open(out, "wb") as sink:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > budget:
                raise UploadError(name, f"zip member '{member.filename}' expands more than {limits.max_ratio:.0f}x "
                                  "(a zip bomb?); refused")  # fmt: skip
            if total + written > limits.max_bytes:
                raise UploadError(name, f"the zip unpacks to more than {limits.max_bytes / 2**20:.0f} MB; refused")
            sink.write(chunk)
    return total + written
