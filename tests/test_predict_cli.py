"""``medvl predict`` on the session's phantom-tiny model: calibrated findings of radiographs, the
out-of-distribution notice for volumes and real X-rays, heatmap PNGs, and bad inputs reported one line each."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medvl.cli import main
from medvl.infer.calibration import read_calibration
from medvl.infer.domain import read_domain
from medvl.infer.profile_fit import cohort_input
from medvl.infer.reading import Reader

pytestmark = pytest.mark.slow


def _phantom_pngs(cohort: Path, n: int) -> list[Path]:
    return sorted(cohort.glob("2d/*/*/image.png"))[:n]


def _ct_volume(path: Path) -> Path:
    rng = np.random.default_rng(0)
    volume = rng.normal(40, 20, (64, 64, 24)).astype(np.float32)
    volume[:8] = -1000  # air around the body
    nib.save(nib.Nifti1Image(volume, np.diag([0.8, 0.8, 3.0, 1.0])), path)
    return path


def test_the_model_carries_its_calibration_and_training_domain(trained_phantom_model):
    calibration = read_calibration(trained_phantom_model.model_dir)
    domain = read_domain(trained_phantom_model.model_dir)
    assert domain.kinds == ["2d"] and set(domain.modalities) <= {"CR", "DX"} and domain.thresholds["2d"] > 0
    offered = calibration.findings("2d")
    assert "Cardiomegaly" in offered and "Liver Lesion" not in offered and calibration.findings("3d") == []
    assert all(0 <= c.threshold <= 1 and c.n_positive >= 2 for c in calibration.kinds["2d"].values())


def test_predict_reads_files_and_folders_and_reports_bad_inputs(trained_phantom_model, tmp_path, capsys):
    folder = tmp_path / "incoming"
    folder.mkdir()
    for i, png in enumerate(_phantom_pngs(trained_phantom_model.cohort_dir, 2)):
        (folder / f"xray-{i}.png").write_bytes(png.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    ct = _ct_volume(tmp_path / "ct.nii.gz")
    heatmaps = tmp_path / "heatmaps"
    status = main(["predict", str(trained_phantom_model.model_dir), str(folder), str(ct), "--json",
                   "--heatmaps", str(heatmaps)])  # fmt: skip
    out, err = capsys.readouterr()
    results = {Path(r["input"]).name: r for r in map(json.loads, out.splitlines())}
    assert status == 2 and set(results) == {"xray-0.png", "xray-1.png", "broken.png", "ct.nii.gz"}
    assert results["broken.png"]["status"] == "error"
    assert [line for line in err.splitlines() if line.startswith("medvl predict:")] == [
        line for line in err.splitlines() if "broken.png" in line
    ] and len(err.strip().splitlines()) == 1
    xray = results["xray-0.png"]
    assert xray["kind"] == "2d" and xray["out_of_distribution"] is False and "Youden" in xray["calibration"]
    names = [f["name"] for f in xray["findings"]]
    assert "Cardiomegaly" in names and "Liver Lesion" not in names
    assert all(f["positive"] == (f["probability"] >= f["threshold"]) for f in xray["findings"])
    assert Path(xray["heatmaps"][names[0]]).is_file()
    volume = results["ct.nii.gz"]
    assert volume["kind"] == "3d" and volume["out_of_distribution"] is True
    assert "never on a volume" in volume["ood_reasons"][0]


def test_own_test_split_passes_and_real_radiographs_are_flagged(trained_phantom_model, realdata):
    """Floors on the test split and on the real X-rays; docs/predict.md has the measured rates."""
    from medvl.data.cache import CachedCohort
    from medvl.infer.loading import prepare_input

    reader = Reader(trained_phantom_model.model_dir)
    cohort = CachedCohort(trained_phantom_model.cache_dir)
    test = cohort.select("test", "2d")
    flagged = [reader.read(cohort_input(cohort, int(i)), cohort.modalities[i]).out_of_distribution for i in test]
    assert np.mean(flagged) <= 0.10, f"{np.mean(flagged):.3f} of {len(test)} own test studies flagged"
    xrays = sorted((realdata / "cxr_covid" / "images").glob("*.jpg"))[::4]
    real = [reader.read(prepare_input(path, reader.prep)).out_of_distribution for path in xrays]
    assert np.mean(real) >= 0.90, f"only {np.mean(real):.3f} of {len(xrays)} real chest X-rays flagged"


def test_predict_refuses_a_missing_model_in_one_line(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nothing"), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medvl predict:") and len(err.strip().splitlines()) == 1


def test_embed_counts_the_images_outside_the_training_data(trained_phantom_model, capsys, tmp_path):
    out = tmp_path / "emb.npz"
    assert main(["embed", str(trained_phantom_model.model_dir), str(trained_phantom_model.cache_dir), "--split", "test",
                 "--json", "-o", str(out)]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    flags = np.load(out)["out_of_distribution"]
    assert len(flags) == result["n"] and int(flags.sum()) == result["out_of_distribution"] <= 0.10 * result["n"]


def test_the_registered_mlflow_model_carries_the_calibration(trained_phantom_model, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVL_CACHE", str(tmp_path / "cache"))
    png = _phantom_pngs(trained_phantom_model.cohort_dir, 1)[0]
    ref = f"models:/{trained_phantom_model.registered_name}/1"
    assert main(["predict", ref, str(png), "--json", "--tracking-uri", trained_phantom_model.tracking_uri]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["out_of_distribution"] is False and all(f["threshold"] is not None for f in result["findings"])


def test_calibrate_refits_a_model_saved_without_calibration(trained_phantom_model, tmp_path, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(trained_phantom_model.model_dir, model)
    for name in ("calibration.json", "domain.json", "domain-embeddings.npz"):
        (model / name).unlink()
    assert Reader(model).calibration is None
    assert main(["calibrate", str(model), str(trained_phantom_model.cache_dir), "-q"]) == 0
    assert "radiographs: " in capsys.readouterr().out
    assert read_calibration(model).findings("2d") == read_calibration(trained_phantom_model.model_dir).findings("2d")
    assert main(["calibrate", str(model), str(tmp_path / "no-cache")]) == 2
    assert capsys.readouterr().err.startswith("medvl calibrate:")
