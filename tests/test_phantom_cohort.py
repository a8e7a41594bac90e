"""Phantom cohorts on disk: determinism, layout, DICOM/NIfTI validity, masks vs labels, adapter, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from medvl.cli import main
from medvl.data.adapters import get_adapter
from medvl.data.cache import CachedCohort
from medvl.data.manifest import from_rows, read_manifest, write_manifest
from medvl.data.phantom import (
    MASK_BITS_2D,
    MASK_BITS_3D,
    MASK_BITS_BY_KIND,
    PhantomError,
    read_index,
    read_mask,
    synthesize,
)
from medvl.data.phantom.ct import FINDING_TISSUE, HU, SCAN_LENGTH_MM, SLICE_THICKNESSES_MM
from medvl.data.phantom.findings import FOCAL_CT_FINDINGS
from medvl.data.phantom.montage import write_montage
from medvl.text.concepts import ConceptVocabulary
from medvl.text.labeller import Labeller
from medvl.text.labels import LabelSpace

PARAMS = {
    "n_2d": 30,
    "n_3d": 4,
    "seed": 5,
    "size": 96,
    "ct_size": 48,
    "depth_range": (16, 20),
    "dicom_fraction": 0.5,
}
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("phantom") / "cohort", **PARAMS).parent


@pytest.fixture(scope="module")
def rows(cohort) -> list[dict[str, str]]:
    return read_index(cohort)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_cohorts_with_any_worker_count(cohort, tmp_path):
    again = synthesize(tmp_path / "again", **PARAMS, workers=2).parent
    first, second = _tree(cohort), _tree(again)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []
    other = synthesize(tmp_path / "other", **{**PARAMS, "seed": 6, "n_3d": 0})
    assert other.read_bytes() != (cohort / "studies.csv").read_bytes()


def test_index_layout_and_cohort_file(cohort, rows):
    meta = json.loads((cohort / "cohort.json").read_text())
    assert meta["parameters"]["seed"] == 5 and meta["parameters"]["depth_range"] == [16, 20]
    assert meta["mask_bits"] == {"2d": MASK_BITS_2D, "3d": MASK_BITS_3D} and meta["version"]
    assert [r["kind"] for r in rows].count("2d") == 30 and [r["kind"] for r in rows].count("3d") == 4
    assert len({r["study_id"] for r in rows}) == len(rows)
    for row in rows:
        for column in ("image", "mask", "dicom"):
            if row[column]:
                assert not Path(row[column]).is_absolute() and (cohort / row[column]).exists(), row[column]
        assert (
            row["sex"] in ("M", "F") and 18 <= int(row["age"]) < 100 and row["phrasing"] in ("train", "eval")
        )
        assert row["report"].count("FINDINGS:") == 1 and row["report"].count("IMPRESSION:") == 1


def test_patients_have_several_studies_and_one_phrasing_pool(rows):
    by_patient = defaultdict(list)
    for row in rows:
        by_patient[row["patient_id"]].append(row)
    assert max(len(v) for v in by_patient.values()) > 1
    for studies in by_patient.values():
        assert len({s["phrasing"] for s in studies}) == 1 and len({s["sex"] for s in studies}) == 1
        dates = [s["study_date"] for s in studies]
        assert dates == sorted(dates)
    pools = {v[0]["phrasing"] for v in by_patient.values() if v[0]["kind"] == "2d"}
    assert pools == {"train", "eval"}


def test_image_sizes_follow_the_parameters(cohort, rows):
    for row in rows:
        if row["kind"] == "2d":
            with Image.open(cohort / row["image"]) as image, Image.open(cohort / row["mask"]) as mask:
                assert image.size == mask.size == (96, 96) and image.mode == mask.mode == "L"
        else:
            volume = nib.load(cohort / row["image"])
            x, y, z = volume.shape
            assert (x, y) == (48, 48) and 16 <= z <= 20 and json.loads(row["shape"]) == [x, y, z]
            assert volume.get_data_dtype() == np.int16


def test_masks_hold_exactly_the_labelled_findings(cohort, rows):
    for row in rows:
        labels = json.loads(row["labels"])
        masks = read_mask(cohort / row["mask"])
        present = {name for name, mask in masks.items() if mask.any()}
        expected = {name for name in MASK_BITS_BY_KIND[row["kind"]] if labels.get(name) == 1}
        assert present == expected, row["study_id"]
        assert labels["No Finding"] == int(not present)
        assert {d["name"] for d in json.loads(row["details"])} == present


def test_radiograph_dicom_matches_png(cohort, rows):
    written = [r for r in rows if r["kind"] == "2d" and r["dicom"]]
    assert len(written) >= 8
    assert {r["photometric"] for r in written} == {"MONOCHROME1", "MONOCHROME2"}
    for row in written:
        ds = pydicom.dcmread(cohort / row["dicom"])
        assert (
            ds.Modality == row["modality"]
            and ds.ViewPosition == row["view"]
            and ds.PatientID == row["patient_id"]
        )
        assert ds.PhotometricInterpretation == row["photometric"]
        syntax = {
            "explicit": "1.2.840.10008.1.2.1",
            "rle": "1.2.840.10008.1.2.5",
            "j2k": "1.2.840.10008.1.2.4.90",
        }
        assert ds.file_meta.TransferSyntaxUID == syntax[row["transfer_syntax"]]
        stored = ds.pixel_array.astype(np.float64)
        shown = 4095 - stored if row["photometric"] == "MONOCHROME1" else stored
        with Image.open(cohort / row["image"]) as image:
            png = np.asarray(image, dtype=np.float64)
        assert np.abs(np.rint(shown / 4095 * 255) - png).max() <= 1
        np.testing.assert_allclose(
            np.asarray(ds.ImagerPixelSpacing, dtype=float)
            / float(ds.EstimatedRadiographicMagnificationFactor),
            np.asarray(ds.PixelSpacing, dtype=float),
            rtol=1e-5,
        )
        assert float(ds.PixelSpacing[0]) == pytest.approx(json.loads(row["spacing"])[0], rel=1e-6)


def _stack_series(folder: Path) -> tuple[np.ndarray, np.ndarray, list[pydicom.Dataset]]:
    """Sort slices by position along the normal; (X, Y, Z) HU array and the RAS affine."""
    slices = [pydicom.dcmread(p) for p in folder.glob("*.dcm")]
    row_dir, col_dir = (
        np.asarray(slices[0].ImageOrientationPatient[:3], float),
        np.asarray(slices[0].ImageOrientationPatient[3:], float),
    )
    normal = np.cross(row_dir, col_dir)
    slices.sort(key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)))
    positions = np.array([np.dot(np.asarray(ds.ImagePositionPatient, float), normal) for ds in slices])
    steps = np.diff(positions)
    np.testing.assert_allclose(steps, float(slices[0].SliceThickness), atol=1e-3)
    hu = np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices])
    dy, dx = (float(v) for v in slices[0].PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = row_dir * dx, col_dir * dy, normal * steps[0]
    lps[:3, 3] = np.asarray(slices[0].ImagePositionPatient, float)
    return hu.transpose(2, 1, 0), LPS_TO_RAS @ lps, slices


def test_ct_series_is_valid_dicom_with_shuffled_order(cohort, rows):
    ct_rows = [r for r in rows if r["kind"] == "3d"]
    for row in ct_rows:
        folder = cohort / row["dicom"]
        volume, affine, slices = _stack_series(folder)
        nifti = nib.load(cohort / row["image"])
        np.testing.assert_array_equal(volume, np.asanyarray(nifti.dataobj))
        np.testing.assert_allclose(affine, nifti.affine, atol=1e-4)
        assert len({ds.SOPInstanceUID for ds in slices}) == len(slices)
        assert (
            len({(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID) for ds in slices}) == 1
        )
        assert all(ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and ds.Modality == "CT" for ds in slices)
        assert all(float(ds.SliceThickness) in SLICE_THICKNESSES_MM for ds in slices)
        assert {ds.PixelRepresentation for ds in slices} <= {0, 1} and slices[0].RescaleType == "HU"
        by_name = [ds.SOPInstanceUID for ds in sorted(slices, key=lambda ds: Path(ds.filename).name)]
        assert by_name != [ds.SOPInstanceUID for ds in slices], "file names give away the slice order"
    assert len({r["transfer_syntax"] for r in ct_rows}) > 1 or len(ct_rows) < 3


def test_medvl_io_loads_the_dicom_series_as_the_nifti(cohort, rows):
    load = pytest.importorskip("medvl.io").load
    for row in rows:
        if row["kind"] == "3d":
            series, volume = load(cohort / row["dicom"]), load(cohort / row["image"])
            np.testing.assert_array_equal(series.array, volume.array)
            np.testing.assert_allclose(series.affine, volume.affine, atol=1e-4)
            assert series.modality == "CT"
        elif row["dicom"]:
            radiograph, png = load(cohort / row["dicom"]), load(cohort / row["image"])
            assert np.abs(np.rint(radiograph.array / 4095 * 255) - png.array).max() <= 1


def test_adapter_rows_roundtrip_through_a_manifest(cohort, rows, tmp_path):
    adapter = get_adapter("phantom")(cohort)
    assert adapter.units() == [r["study_id"] for r in rows]
    manifest_rows = [row for unit in adapter.units() for row in adapter.read_unit(unit).rows]
    df = from_rows(manifest_rows)
    digest = write_manifest(df, tmp_path / "phantom.parquet")
    back = read_manifest(tmp_path / "phantom.parquet")
    assert back.attrs["hash"] == digest and len(back) == len(rows)
    for original, row in zip(rows, back.to_dict("records"), strict=True):
        image = row["images"][0]
        assert row["labels"] == json.dumps(json.loads(original["labels"]), sort_keys=True)
        assert image["kind"] == original["kind"] and Path(image["mask"]).is_file()
        expected = original["dicom"] or original["image"]
        assert Path(image["path"]) == cohort / expected
        assert json.loads(row["extra"])["phrasing"] == original["phrasing"]
        assert row["split"] == ("test" if original["phrasing"] == "eval" else "")
        assert row["report"] == original["report"] and row["sex"] == original["sex"]
    files = get_adapter("phantom")(cohort, images="files")
    assert all(
        Path(r["images"][0]["path"]).suffix in (".png", ".gz") for u in files.units() for r in files.read_unit(u).rows
    )


def test_adapter_refuses_bad_options_and_reports_missing_files(cohort, rows, tmp_path):
    with pytest.raises(ValueError, match="images"):
        get_adapter("phantom")(cohort, images="jpeg")
    with pytest.raises(PhantomError, match="medvl synth"):
        get_adapter("phantom")(tmp_path).units()
    broken = tmp_path / "broken"
    synthesize(broken, n_2d=2, size=64, dicom_fraction=0.0)
    victim = read_index(broken)[1]
    (broken / victim["image"]).unlink()
    adapter = get_adapter("phantom")(broken)
    result = adapter.read_unit(victim["study_id"])
    assert result.rows == [] and result.rejected[0].path.endswith("image.png")


def test_synthesize_refuses_bad_parameters_and_folders(tmp_path):
    for bad in (
        {"n_2d": -1},
        {"size": 10},
        {"depth_range": (40, 20)},
        {"eval_fraction": 1.5},
        {"ct_dicom_fraction": -0.1},
        {"n_2d": 0},
    ):
        with pytest.raises(PhantomError, match=next(iter(bad)).split("_")[0]):
            synthesize(tmp_path / "x", **{"n_2d": 1, **bad})
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    with pytest.raises(PhantomError, match="not empty"):
        synthesize(tmp_path / "busy", n_2d=1, size=64, overwrite=True)
    assert (tmp_path / "busy" / "notes.txt").exists()
    synthesize(tmp_path / "old", n_2d=2, size=64)
    with pytest.raises(PhantomError, match="not empty"):
        synthesize(tmp_path / "old", n_2d=1, size=64)
    synthesize(tmp_path / "old", n_2d=1, size=64, overwrite=True)
    assert len(read_index(tmp_path / "old")) == 1


def _medvl(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from medvl.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def test_cli_writes_a_cohort_and_a_montage(tmp_path):
    done = _medvl(
        "synth",
        "-o",
        str(tmp_path / "c"),
        "--n-2d",
        "6",
        "--n-3d",
        "1",
        "--size",
        "64",
        "--ct-size",
        "32",
        "--depth",
        "16,18",
        "--ct-dicom-fraction",
        "0",
        "--montage",
        str(tmp_path / "m.png"),
    )
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and "synth" in done.stderr  # the progress bar goes to stderr
    rows = read_index(tmp_path / "c")
    assert len(rows) == 7 and [r["dicom"] for r in rows if r["kind"] == "3d"] == [""]
    assert not list((tmp_path / "c" / "3d").rglob("*.dcm"))
    with Image.open(tmp_path / "m.png") as picture:
        assert picture.size[0] > 300


def test_cli_help_and_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as helped:
        main(["synth", "--help"])
    out = capsys.readouterr().out
    assert helped.value.code == 0 and "--n-2d" in out and "byte-identical" in out
    assert main(["synth", "-o", str(tmp_path / "c"), "--size", "10", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "size" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert main(["synth", "-o", str(tmp_path / "full"), "-q"]) == 2
    assert "not empty" in capsys.readouterr().err


def test_montage_draws_both_kinds(cohort, tmp_path):
    out = write_montage(cohort, tmp_path / "montage.png", n_2d=4, n_3d=2)
    with Image.open(out) as picture:
        pixels = np.asarray(picture.convert("RGB"))
    assert pixels.shape[0] > 200 and pixels.std() > 10


@pytest.fixture(scope="module")
def ct_cohort(tmp_path_factory) -> Path:
    """A CT training-style cohort: realistic depths, DICOM for none of the studies."""
    out = tmp_path_factory.mktemp("phantom") / "ct"
    return synthesize(
        out, n_2d=0, n_3d=16, seed=3, ct_size=48, depth_range=(40, 200), ct_dicom_fraction=0.0
    ).parent


def test_ct_cohort_honours_depth_and_thickness_and_plants_visible_findings(ct_cohort):
    rows = read_index(ct_cohort)
    names, lengths = set(), []
    for row in rows:
        x, y, z = json.loads(row["shape"])
        dx, dy, dz = json.loads(row["spacing"])
        assert (x, y) == (48, 48) and 40 <= z <= 200 and dz in SLICE_THICKNESSES_MM
        lengths.append(z * dz)
        assert row["dicom"] == "" and row["transfer_syntax"] == "" and row["modality"] == "CT"
        volume = np.asanyarray(nib.load(ct_cohort / row["image"]).dataobj)
        masks = read_mask(ct_cohort / row["mask"])
        text = row["report"].lower()
        for detail in json.loads(row["details"]):
            name = detail["name"]
            names.add(name)
            voxels = volume[masks[name]]
            assert voxels.size, name
            assert abs(np.median(voxels) - HU[FINDING_TISSUE[name]]) < 25, (name, np.median(voxels))
            if detail["size_cm"]:
                assert f"{detail['size_cm']:.1f} cm" in text or "IMPRESSION" in row["report"], text
    assert all(SCAN_LENGTH_MM[0] <= length <= SCAN_LENGTH_MM[1] for length in lengths)
    assert len(names) >= 4 and {"Kidney Cyst", "Ascites", "Lymphadenopathy"} & names
    assert sum(not json.loads(r["details"]) for r in rows) < len(rows) / 2


def test_adapter_ingests_ct_studies_without_dicom(ct_cohort):
    adapter = get_adapter("phantom")(ct_cohort)  # images=dicom falls back to the NIfTI
    rows = [row for unit in adapter.units() for row in adapter.read_unit(unit).rows]
    assert len(rows) == 16
    for row in rows:
        image = row["images"][0]
        assert image["path"].endswith("ct.nii.gz") and Path(image["mask"]).is_file()
        assert set(json.loads(row["labels"])) >= {"Kidney Cyst", "Ascites", "Lymphadenopathy", "Liver Lesion"}


def test_reports_cite_the_key_image_of_each_focal_finding(ct_cohort, tmp_path):
    """An asserted focal finding's sentence may cite "(image N)", N counted from the head: the cache slice that
    the citation names shows the finding where it is largest."""
    vocabulary = ConceptVocabulary.from_reports([r["report"] for r in read_index(ct_cohort)], categories=["finding"],
                                                labeller=Labeller(LabelSpace.chest_abdomen_ct()))  # fmt: skip
    observation = {vocabulary.for_observation(name): name for name in FOCAL_CT_FINDINGS}
    manifest, cache_dir = tmp_path / "ct.parquet", tmp_path / "cache"
    assert main(["ingest", "phantom", str(ct_cohort), "-o", str(manifest), "-q"]) == 0
    assert main(["cache", str(manifest), "-o", str(cache_dir), "--size", "48", "-q"]) == 0
    cache = CachedCohort(cache_dir)
    cited = 0
    for i in range(len(cache)):
        numbers = vocabulary.key_images([cache.text("report", i)])[0].tolist()
        mask = cache[i]["mask"][:, 0].numpy()
        for concept, number in zip(vocabulary.names, numbers, strict=True):
            if number:
                bit = MASK_BITS_3D[observation[concept]]
                area = (mask & bit).astype(bool).sum(axis=(1, 2))
                assert cache.image_slice(i, number) == area.argmax() == len(area) - number, (concept, number)
                cited += 1
    assert cited >= 8
