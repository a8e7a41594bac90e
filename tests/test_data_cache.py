"""``medvl cache`` and ``CachedCohort``: geometry, intensities, masks, idempotence, resume, loaders."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from medvl.cli import main
from medvl.data.cache import CachedCohort, CacheError, collate_cohort
from medvl.data.cache_build import build_cache
from medvl.data.ingest import ingest
from medvl.data.manifest import from_rows, make_row, read_manifest, write_manifest
from medvl.data.preprocess import PrepSettings, fit_square, normalise, prepare
from tests.test_data_adapters import write_dicom

SIZE = 32
AIR, MARKER = -1400.0, 1000.0


def ras_volume() -> tuple[np.ndarray, np.ndarray]:
    """(X=16, Y=12, Z=5) HU volume, RAS affine 0.8 x 0.8 x 2.5 mm; a marker at the patient's most left (i=0),
    most anterior (j=11), most superior (k=4) corner, and a second one at the most right/posterior/inferior."""
    array = np.full((16, 12, 5), AIR, dtype=np.float32)
    array[0:2, 10:12, 4] = MARKER
    array[15, 0, 0] = MARKER
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    affine[:3, 3] = [-10.0, -20.0, 30.0]
    return array, affine


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> str:
    nib.save(nib.Nifti1Image(array, affine), path)
    return str(path)


def flipped_copy(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same anatomy stored with the first and third axes reversed (an LPI-stored file)."""
    flip = np.diag([-1.0, 1.0, -1.0, 1.0])
    flip[0, 3], flip[2, 3] = array.shape[0] - 1, array.shape[2] - 1
    return np.ascontiguousarray(array[::-1, :, ::-1]), affine @ flip


def xray_with_square(path: Path, mask_path: Path) -> None:
    """A 40 x 60 (rows x cols) radiograph, mid grey, a bright square at rows 8-15, cols 40-51; its mask."""
    pixels = np.full((40, 60), 100, np.uint8)
    pixels[:, :10] = 20
    pixels[8:16, 40:52] = 250
    Image.fromarray(pixels).save(path, format="JPEG", quality=95)
    mask = np.zeros((40, 60), np.uint8)
    mask[8:16, 40:52] = 255
    Image.fromarray(mask).save(mask_path)


@pytest.fixture()
def cohort(tmp_path) -> Path:
    """A manifest with a radiograph + mask, a NIfTI CT (+ flipped twin, + label mask), a DICOM CT series,
    a truncated JPEG and a text-only study."""
    data = tmp_path / "data"
    data.mkdir()
    xray_with_square(data / "cxr.jpg", data / "cxr_mask.png")
    array, affine = ras_volume()
    seg = np.zeros(array.shape, np.int16)
    seg[0:2, 10:12, 4] = 3
    ct = write_nifti(data / "ct.nii.gz", array, affine)
    write_nifti(data / "ct_seg.nii.gz", seg, affine)
    ct_flipped = write_nifti(data / "ct_flipped.nii.gz", *flipped_copy(array, affine))
    for k in range(3):
        pixels = np.full((8, 8), 24 + 10 * k, np.uint16)  # HU = 24 + 10k - 1024 after the rescale
        write_dicom(data / "series" / f"{k}.dcm", z=4.0 - 2.0 * k, instance=k + 1, pixels=pixels)
    good = (data / "cxr.jpg").read_bytes()
    (data / "broken.jpg").write_bytes(good[: len(good) // 3])

    def ref(path, modality="DX", kind="2d", **extra):
        return {"path": str(path), "modality": modality, "kind": kind, **extra}

    rows = [
        make_row(patient_id="p1", study_id="a-cxr", source="test", split="train",
                 images=[ref(data / "cxr.jpg", view="PA", mask=data / "cxr_mask.png")],
                 labels={"Nodule": 1, "Effusion": 0}, report="FINDINGS: nodule. IMPRESSION: nodule.",
                 findings="nodule.", impression="nodule."),
        make_row(patient_id="p2", study_id="b-ct", source="test", split="val",
                 images=[ref(ct, "CT", "3d", mask=data / "ct_seg.nii.gz"), ref(ct_flipped, "CT", "3d")],
                 labels={"Effusion": -1}, report="CT report."),
        make_row(patient_id="p3", study_id="c-dicom", source="test", split="test",
                 images=[ref(data / "series", "CT", "3d", series_uid="1.2.826.0.1.1.1")], report="DICOM CT."),
        make_row(patient_id="p4", study_id="d-broken", source="test", split="train",
                 images=[ref(data / "broken.jpg")], report="broken image."),
        make_row(patient_id="p5", study_id="e-text", source="test", split="train", images=[], report="text only."),
    ]
    manifest = tmp_path / "cohort.parquet"
    write_manifest(from_rows(rows), manifest)
    return manifest


def built(cohort: Path, tmp_path: Path, **kwargs) -> CachedCohort:
    settings = kwargs.pop("settings", PrepSettings(size=SIZE))
    build_cache(cohort, tmp_path / "cache", settings, progress=False, **kwargs)
    return CachedCohort(tmp_path / "cache")


def items_by_study(dataset: CachedCohort) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for i in range(len(dataset)):
        item = dataset[i]
        found.setdefault(item["study_id"], []).append(item)
    return found


def test_radiograph_is_letterboxed_normalised_and_its_mask_aligned(cohort, tmp_path):
    dataset = built(cohort, tmp_path)
    item = items_by_study(dataset)["a-cxr"][0]
    image, mask = item["image"], item["mask"]
    assert image.shape == mask.shape == (1, SIZE, SIZE) and image.dtype == torch.float32
    assert not item["is_volume"] and item["z_mm"].tolist() == [0.0]
    assert torch.isnan(item["spacing"]).all()  # a JPEG does not know its pixel size
    # 40 x 60 fills the width: 32 x 21 pixels (40 * 32 / 60 = 21.3), centred, black padding
    index = pd.read_parquet(tmp_path / "cache" / "index.parquet").set_index("study_id")
    assert list(index.loc["a-cxr", "content_box"]) == [5, 0, 26, 32]
    assert image[0, :5].max() == 0 and image[0, 26:].max() == 0
    inside = image[0][mask[0] == 1]
    assert mask.unique().tolist() == [0, 1] and inside.numel() > 10  # the bright square (edges blur a little)
    assert inside.median() > 0.95 and inside.mean() > 0.85 and image[0][mask[0] == 0].mean() < 0.5
    rows, cols = torch.nonzero(mask[0], as_tuple=True)
    assert 5 + 8 * 32 / 60 - 1 <= rows.min() <= 5 + 8 * 32 / 60 + 1 and 40 * 32 / 60 - 1 <= cols.min() <= 40 * 32 / 60 + 1
    assert image[0, 15, 2] < 0.05 < image[0, 15, 10] < 0.6  # dark left band (1st percentile), grey body
    assert dataset.label_space == ["Effusion", "Nodule"] and item["labels"].tolist() == [0.0, 1.0]
    assert (item["findings"], item["view"], item["patient_id"]) == ("nodule.", "PA", "p1")


def test_volume_is_axial_lps_with_z_in_mm_whatever_the_file_orientation(cohort, tmp_path):
    dataset = built(cohort, tmp_path)
    ras, flipped = items_by_study(dataset)["b-ct"]
    image = ras["image"]
    assert image.shape == (5, 1, SIZE, SIZE) and ras["is_volume"]
    assert ras["z_mm"].tolist() == pytest.approx([30.0, 32.5, 35.0, 37.5, 40.0])  # inferior to superior
    assert ras["spacing"].tolist() == pytest.approx([0.4, 0.4, 2.5])  # 16 x 0.8 mm over 32 pixels
    # left/anterior/superior marker: last slice, top rows (anterior), right-hand columns (patient's left)
    top = image[4, 0]
    rows, cols = torch.nonzero(top > 0.99, as_tuple=True)
    assert rows.float().mean() < 10 and cols.float().mean() > 26
    bottom = image[0, 0]
    rows, cols = torch.nonzero(bottom > 0.5, as_tuple=True)
    assert rows.float().mean() > 22 and cols.float().mean() < 5  # right/posterior/inferior corner
    assert image.min() == 0.0  # air below the lung window
    torch.testing.assert_close(flipped["image"], image)  # the same anatomy stored flipped caches identically
    torch.testing.assert_close(flipped["z_mm"], ras["z_mm"])
    mask = ras["mask"]
    assert mask.shape == image.shape and set(mask.unique().tolist()) == {0, 3}
    marker = mask[4, 0] == 3
    assert marker.sum() > 4 and top[marker].min() > 0.5  # the label sits on the marker...
    bright = torch.nonzero(top > 0.5).float().mean(dim=0)
    assert torch.allclose(torch.nonzero(marker).float().mean(dim=0), bright, atol=1.0)  # ...centred on it
    assert (mask[:4] == 0).all() and "mask" not in flipped
    assert math.isnan(ras["labels"][1]) and ras["labels"][0] == -1  # Nodule unknown, Effusion uncertain


def test_dicom_series_is_stacked_by_position(cohort, tmp_path):
    item = items_by_study(built(cohort, tmp_path))["c-dicom"][0]
    assert item["z_mm"].tolist() == [0.0, 2.0, 4.0]
    means = item["image"].mean(dim=(1, 2, 3))  # z = 0, 2, 4 mm hold HU -980, -990, -1000 (instances 3, 2, 1)
    assert means[0] > means[1] > means[2]
    assert item["spacing"].tolist() == pytest.approx([0.2, 0.2, 2.0])  # 8 rows x 0.8 mm = 6.4 mm over 32 px


def test_undecodable_and_text_only_studies_are_quarantined(cohort, tmp_path):
    dataset = built(cohort, tmp_path)
    quarantine = pd.read_csv(tmp_path / "cache" / "quarantine.csv", keep_default_na=False)
    assert sorted(quarantine["study_id"]) == ["d-broken", "e-text"]
    broken = quarantine.set_index("study_id").loc["d-broken"]
    assert broken["path"].endswith("broken.jpg") and broken["error_type"] == "CorruptPixelDataError"
    assert quarantine.set_index("study_id").loc["e-text", "error_type"] == "NoImage"
    assert len(dataset) == 4
    meta = json.loads((tmp_path / "cache" / "cache.json").read_text())
    assert (meta["items"], meta["slices"], meta["quarantined"], meta["complete"]) == (4, 14, 2, True)


def test_rebuild_is_a_no_op_and_other_settings_are_refused(cohort, tmp_path):
    first = build_cache(cohort, tmp_path / "cache", PrepSettings(size=SIZE), progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}
    again = build_cache(cohort, tmp_path / "cache", PrepSettings(size=SIZE), progress=False)
    assert again.up_to_date and not first.up_to_date and again.key == first.key
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()} == stamps
    with pytest.raises(CacheError, match="another manifest or other settings"):
        build_cache(cohort, tmp_path / "cache", PrepSettings(size=SIZE, ct_window="mediastinum"), progress=False)
    other = build_cache(cohort, tmp_path / "cache", PrepSettings(size=SIZE, ct_window="mediastinum"),
                        overwrite=True, progress=False)
    assert other.key != first.key and not other.up_to_date
    with pytest.raises(CacheError, match="not empty and holds no medvl cache"):
        build_cache(cohort, tmp_path / "data", PrepSettings(size=SIZE), progress=False)


def test_interrupted_build_resumes_after_the_last_finished_shard(cohort, tmp_path):
    tiny = 1 / 2**20  # one image per shard
    reference = built(cohort, tmp_path / "ref", shard_mb=tiny)
    cache = tmp_path / "cache"
    build_cache(cohort, cache, PrepSettings(size=SIZE), shard_mb=tiny, progress=False)
    parts = sorted(cache.glob("part-*.parquet"))
    assert len(parts) >= 4
    # simulate a crash while the third shard was written: no part index for it and later ones, no final files
    for part in parts[2:]:
        part.unlink()
        part.with_suffix(".quarantine.csv").unlink()
    (cache / "images-00002.u8").write_bytes(b"half-written")
    (cache / "index.parquet").unlink()
    meta = json.loads((cache / "cache.json").read_text())
    (cache / "cache.json").write_text(json.dumps({**meta, "complete": False}))
    with pytest.raises(CacheError, match="incomplete"):
        CachedCohort(cache)
    resumed = build_cache(cohort, cache, PrepSettings(size=SIZE), shard_mb=tiny, progress=False)
    assert not resumed.up_to_date and resumed.items == len(reference) and resumed.quarantined == 2
    dataset = CachedCohort(cache)
    for i in range(len(reference)):
        a, b = reference[i], dataset[i]
        assert a["study_id"] == b["study_id"]
        torch.testing.assert_close(a["image"], b["image"])


def test_dataloader_workers_collate_and_pickling(cohort, tmp_path):
    dataset = built(cohort, tmp_path)
    _ = dataset[0]  # maps a shard in this process
    assert len(pickle.dumps(dataset)) < 20_000  # the mapped shards are not pickled
    loader = DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collate_cohort)
    (batch,) = list(loader)
    assert batch["image"].shape == (4, 5, 1, SIZE, SIZE)  # the radiograph became a one-slice volume
    depths = (~batch["key_padding_mask"]).sum(dim=1).tolist()
    assert sorted(depths) == [1, 3, 5, 5]
    for b, depth in enumerate(depths):
        assert batch["image"][b, depth:].abs().sum() == 0 and batch["z_mm"][b, depth:].abs().sum() == 0
    assert batch["study_id"] == ["a-cxr", "b-ct", "b-ct", "c-dicom"]
    assert batch["has_mask"].tolist() == [True, True, False, False]
    assert batch["mask"][0, 0].sum() > 0 and batch["mask"][2:].sum() == 0
    assert batch["labels"].shape == (4, 2) and batch["spacing"].shape == (4, 3)


def test_worker_processes_write_the_same_cache(cohort, tmp_path):
    serial = built(cohort, tmp_path / "serial")
    parallel = built(cohort, tmp_path / "parallel", workers=2)
    assert len(serial) == len(parallel)
    for i in range(len(serial)):
        torch.testing.assert_close(serial[i]["image"], parallel[i]["image"])


def test_collate_of_2d_items_stacks_without_padding(tmp_path):
    manifest = tmp_path / "m.parquet"
    rows = []
    for k in range(3):
        path = tmp_path / f"x{k}.png"
        Image.fromarray(np.arange(200, dtype=np.uint8).reshape(10, 20) + k).save(path)
        rows.append(make_row(patient_id=f"p{k}", study_id=f"s{k}", source="t", split="train",
                             images=[{"path": str(path), "modality": "DX"}]))
    write_manifest(from_rows(rows), manifest)
    build_cache(manifest, tmp_path / "cache", PrepSettings(size=16), progress=False)
    dataset = CachedCohort(tmp_path / "cache", split="train")
    batch = collate_cohort([dataset[i] for i in range(3)])
    assert batch["image"].shape == (3, 1, 16, 16) and batch["z_mm"].shape == (3, 1)
    assert "key_padding_mask" not in batch and "mask" not in batch
    assert len(CachedCohort(tmp_path / "cache", split="test")) == 0
    with pytest.raises(ValueError, match="split 'dev'"):
        CachedCohort(tmp_path / "cache", split="dev")


def test_slice_spacing_resampling(cohort, tmp_path):
    dataset = built(cohort, tmp_path, settings=PrepSettings(size=SIZE, slice_mm=5.0))
    ras = items_by_study(dataset)["b-ct"][0]
    assert ras["z_mm"].tolist() == pytest.approx([30.0, 35.0, 40.0])
    assert ras["image"].shape[0] == ras["mask"].shape[0] == 3 and ras["spacing"][2] == 5.0
    assert (ras["mask"][2] == 3).any() and not (ras["mask"][:2] == 3).any()


def test_lesion_lands_on_the_same_pixels_in_image_and_mask(tmp_path):
    """A 4 x 4 mm lesion in a CT with 0.5 x 1 x 2.5 mm voxels: fitted, centred and resampled in depth, it covers
    the same pixels in the image and its mask, and is square in both."""
    array = np.full((40, 12, 5), -1000.0, np.float32)  # RAS (x, y, z): 20 x 12 mm, 5 slices
    seg = np.zeros(array.shape, np.uint8)
    array[4:12, 2:6, 2:4], seg[4:12, 2:6, 2:4] = 100.0, 1
    affine = np.diag([0.5, 1.0, 2.5, 1.0])
    ref = {"path": write_nifti(tmp_path / "ct.nii.gz", array, affine), "modality": "CT",
           "mask": write_nifti(tmp_path / "seg.nii.gz", seg, affine)}
    prepared = prepare(ref, PrepSettings(size=40, slice_mm=5.0))
    assert prepared.content_box == (8, 0, 32, 40) and prepared.spacing == (0.5, 0.5, 5.0)
    lesion = np.zeros((3, 40, 40), bool)  # native slice 2 (z = 5 mm); anterior at the top, patient's left on the right
    lesion[1, 8 + 2 * (12 - 6):8 + 2 * (12 - 2), 40 - 12:40 - 4] = True
    assert np.array_equal(prepared.mask == 1, lesion)
    assert np.array_equal(prepared.pixels > 128, lesion)


def test_crop_body_gives_the_square_to_the_patient(tmp_path):
    """A 100 x 60 mm body in a 200 x 200 mm field of view: cropped (5 mm margin), its 110 mm width fills the
    square at 110/44 = 2.5 mm per pixel instead of 200/44; a lesion lands on the same pixels in image and mask,
    and a slice of air alone is not cropped."""
    array = np.full((200, 200, 3), -1000.0, np.float32)  # RAS (x, y, z), 1 mm voxels
    seg = np.zeros(array.shape, np.uint8)
    array[50:150, 70:130, :] = 40.0  # body: x 50-150, y 70-130 mm
    array[60:70, 80:90, 1], seg[60:70, 80:90, 1] = 300.0, 1
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    ref = {"path": write_nifti(tmp_path / "ct.nii.gz", array, affine), "modality": "CT",
           "mask": write_nifti(tmp_path / "seg.nii.gz", seg, affine)}
    whole = prepare(ref, PrepSettings(size=44, ct_window="mediastinum"))
    cropped = prepare(ref, PrepSettings(size=44, ct_window="mediastinum", crop_body=True))
    assert whole.spacing[:2] == pytest.approx((200 / 44, 200 / 44)) and whole.content_box == (0, 0, 44, 44)
    assert cropped.spacing[:2] == pytest.approx((2.5, 2.5)) and cropped.content_box == (8, 0, 36, 44)
    assert (cropped.mask == 1).sum() == 16 and np.array_equal(cropped.mask == 1, cropped.pixels > 200)
    assert (cropped.pixels[:, 8:36] > 0).mean() > 0.8  # body nearly fills the content box
    air = {"path": write_nifti(tmp_path / "air.nii.gz", np.full((20, 20, 2), -1000.0, np.float32), affine),
           "modality": "CT"}
    assert prepare(air, PrepSettings(size=20, crop_body=True)).content_box == (0, 0, 20, 20)
    assert "crop_body" not in PrepSettings().as_dict() and PrepSettings(crop_body=True).as_dict()["crop_body"]


def test_intensity_rules():
    settings = PrepSettings(ct_window="mediastinum")  # centre 50, width 350
    ct = normalise(np.array([[[-200.0, 50.0, 400.0]]]), "CT", settings)
    assert ct.ravel().tolist() == pytest.approx([0.0, 0.5, 1.0], abs=0.01)
    xray = normalise(np.linspace(0, 1000, 1001).reshape(1, 1, -1), "DX", settings)
    assert xray.min() == 0.0 and xray.max() == 1.0 and xray[0, 0, 500] == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="constant"):
        normalise(np.full((1, 4, 4), 7.0), "MR", settings)
    square, box, out_mm = fit_square(np.ones((1, 10, 40)), 2.0, 0.5, 20)  # 20 mm x 20 mm physically
    assert box == (0, 0, 20, 20) and out_mm == 1.0 and square.min() > 0.99
    with pytest.raises(ValueError, match="CT window"):
        PrepSettings(ct_window="liver")


def test_cli_cache(cohort, tmp_path, capsys):
    assert main(["cache", str(cohort), "-o", str(tmp_path / "c"), "--size", "16", "-q"]) == 0
    assert "4 images (14 slices), 2 quarantined; built in" in capsys.readouterr().out
    assert main(["cache", str(cohort), "-o", str(tmp_path / "c"), "--size", "16", "-q"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["cache", str(cohort), "-o", str(tmp_path / "c"), "--size", "24", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medvl cache: ") and "--overwrite" in err and len(err.splitlines()) == 1
    assert main(["cache", str(tmp_path / "none.parquet"), "-o", str(tmp_path / "d")]) == 2
    assert "no such manifest file" in capsys.readouterr().err


def test_real_radiographs_masks_cover_the_dark_lungs(realdata, tmp_path):
    result = ingest("covid-cxr", realdata / "cxr_covid", tmp_path / "covid.parquet", progress=False)
    df = read_manifest(result.manifest)
    with_masks = df[df["images"].map(lambda refs: any(r["mask"] for r in refs))].head(12)
    subset = tmp_path / "subset.parquet"
    write_manifest(with_masks.reset_index(drop=True), subset)
    build_cache(subset, tmp_path / "cache", PrepSettings(size=96), progress=False)
    dataset = CachedCohort(tmp_path / "cache")
    darker = []
    for i in range(len(dataset)):
        item = dataset[i]
        if "mask" in item:
            image, mask = item["image"][0], item["mask"][0].bool()
            darker.append(image[mask].mean() < image[~mask & (image > 0)].mean())
    assert len(darker) >= 10 and sum(darker) >= 0.9 * len(darker)  # aerated lungs are darker than the rest
