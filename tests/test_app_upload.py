"""Upload checks: accepted formats, and every refusal with a clear message (real files, real zips)."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from app.upload import UploadError, UploadLimits, open_upload, safe_suffix
from tests.app_support import chest_png, ct_series, dicom_radiograph, zip_bytes


def test_png_and_dicom_are_loaded_with_a_content_hash(tmp_path):
    png = chest_png(tmp_path / "a.png").read_bytes()
    opened = open_upload("chest.png", png, tmp_path / "w1")
    assert opened.record.spatial_shape == (96, 96)
    assert len(opened.study_hash) == 64
    assert opened.study_hash == open_upload("other-name.png", png, tmp_path / "w2").study_hash
    dicom = dicom_radiograph(tmp_path / "x.dcm").read_bytes()
    assert open_upload("x.dcm", dicom, tmp_path / "w3").record.modality == "DX"


def test_zip_of_a_series_is_stacked_into_a_volume(tmp_path):
    files = ct_series(tmp_path / "series", depth=5)
    data = zip_bytes({f"study/series/{p.name}": p.read_bytes() for p in files})
    opened = open_upload("series.zip", data, tmp_path / "w")
    assert opened.record.is_volume and opened.record.spatial_shape[2] == 5
    assert sorted(p.name for p in opened.path.iterdir()) == [f"{i:05d}.dcm" for i in range(5)]


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("empty.dcm", b"", "empty"),
        ("notes.txt", b"this is a clinical note, not an image\n" * 10, "NotAnImageError"),
        ("broken.dcm", b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + b"garbage" * 20, "Error"),
    ],
)
def test_non_images_and_corrupt_files_are_refused(tmp_path, name, data, expected):
    with pytest.raises(UploadError) as info:
        open_upload(name, data, tmp_path / "w")
    assert expected in str(info.value) and name in str(info.value)


def test_truncated_dicom_is_refused_as_corrupt(tmp_path):
    data = dicom_radiograph(tmp_path / "x.dcm", size=128).read_bytes()
    with pytest.raises(UploadError, match="Corrupt|truncated"):
        open_upload("cut.dcm", data[: len(data) // 2], tmp_path / "w")


def test_oversized_upload_is_refused_before_writing(tmp_path):
    with pytest.raises(UploadError, match="limit is 1 MB"):
        open_upload("big.png", b"x" * (2 * 2**20), tmp_path / "w", UploadLimits(max_bytes=2**20))
    assert not (tmp_path / "w").exists()


def test_zip_bomb_is_refused_by_ratio(tmp_path):
    data = zip_bytes({"slice.dcm": b"\0" * (8 * 2**20)})
    with pytest.raises(UploadError, match="zip bomb"):
        open_upload("bomb.zip", data, tmp_path / "w", UploadLimits(max_bytes=64 * 2**20, max_ratio=100))


def test_zip_with_lying_sizes_or_too_much_content_is_refused(tmp_path):
    data = zip_bytes({f"{i}.dcm": bytes(range(256)) * 4096 for i in range(3)})  # 3 MB, barely compressible
    with pytest.raises(UploadError, match="unpacks to"):
        open_upload("big.zip", data, tmp_path / "w", UploadLimits(max_bytes=2 * 2**20, max_ratio=1000))


@pytest.mark.parametrize("member", ["../evil.dcm", "/etc/evil.dcm", "a/../../evil.dcm", "C:/evil.dcm"])
def test_zip_path_traversal_is_refused(tmp_path, member):
    with pytest.raises(UploadError, match="path traversal"):
        open_upload("evil.zip", zip_bytes({member: b"x"}), tmp_path / "w")
    assert not (tmp_path / "evil.dcm").exists()


def test_zip_symlink_and_too_many_members_are_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("link.dcm")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(UploadError, match="symbolic link"):
        open_upload("link.zip", buffer.getvalue(), tmp_path / "w1")
    with pytest.raises(UploadError, match="holds 4 files; the limit is 3"):
        open_upload("many.zip", zip_bytes({f"{i}.dcm": b"x" for i in range(4)}), tmp_path / "w2",
                    UploadLimits(max_members=3))  # fmt: skip


def test_zip_without_images_is_refused_with_the_loader_reason(tmp_path):
    with pytest.raises(UploadError, match="DICOM"):
        open_upload("text.zip", zip_bytes({"a.txt": b"hello world" * 50}), tmp_path / "w")


def test_safe_suffix_keeps_extensions_only():
    assert safe_suffix("scan.nii.gz") == ".nii.gz"
    assert safe_suffix("IMG0001") == ""
    assert safe_suffix("x.../../etc") == ""
