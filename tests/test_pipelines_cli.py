"""``pipelines`` CLI and config: help, bad input (exit 2, one line), work-folder state, the PHI policy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
import yaml

from pipelines.cli import main
from pipelines.config import load_pipeline_config
from pipelines.state import STATE_FILE, PipelineState, StateError

CONFIGS = Path(__file__).resolve().parents[1] / "pipelines" / "configs"


def test_console_script_help_explains_the_stages():
    out = subprocess.run([str(Path(sys.executable).with_name("pipelines")), "run", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "--work-dir" in out.stdout and "--from" in out.stdout and "--until" in out.stdout
    listed = subprocess.run([str(Path(sys.executable).with_name("pipelines")), "list"], capture_output=True,
                            text=True, timeout=120)
    assert "ingest -> deid-check -> cache -> pretrain -> register -> benchx -> gate (alias) -> card" in listed.stdout


@pytest.mark.parametrize(("text", "expected"), [
    ("name: [unclosed", "not valid YAML"),
    ("sources: []", "'sources' is empty"),
    ("sources: [{adapter: phantom}]", "sources[0] needs both"),
    ("sources: [{adapter: phantom, path: x}]\ncache: {size: big}", "cache.size"),
    ("sources: [{adapter: phantom, path: x}]\nnot_a_setting: 1", "not_a_setting"),
    ("sources: [{adapter: phantom, path: x}]\ngate: {policy: missing.yaml}", "gate.policy 'missing.yaml' not found"),
])
def test_bad_config_exits_2_with_one_line(tmp_path, capsys, text, expected):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert main(["run", "pretrain-evaluate-register", str(config), "--work-dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and str(config) in err


def test_unknown_pipeline_and_missing_config_exit_2(tmp_path, capsys):
    assert main(["run", "no-such-pipeline", str(CONFIGS / "demo.yaml")]) == 2
    assert "known: pretrain-evaluate-register" in capsys.readouterr().err
    assert main(["run", "pretrain-evaluate-register", str(tmp_path / "absent.yaml")]) == 2
    assert "settings file not found" in capsys.readouterr().err


def test_shipped_configs_load_with_absolute_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDVL_DEMO_PHANTOM", str(tmp_path))
    config = load_pipeline_config(CONFIGS / "demo.yaml")
    assert config.sources[0].path == str(tmp_path) and Path(config.gate.policy).is_file()
    assert load_pipeline_config(CONFIGS / "phantom.yaml", [f"sources=[{{adapter: phantom, path: {tmp_path}}}]"])


def test_state_refuses_another_config_unless_rerunning_from_a_stage(tmp_path):
    state = PipelineState(tmp_path, "p", "hash-a")
    state.finish("ingest", {"manifest": "m.parquet"})
    key = state.key
    with pytest.raises(StateError, match="another config"):
        PipelineState(tmp_path, "p", "hash-b")
    with pytest.raises(StateError, match="belongs to pipeline 'p'"):
        PipelineState(tmp_path, "q", "hash-a")
    reopened = PipelineState(tmp_path, "p", "hash-b", accept_new_config=True)
    assert reopened.key == key and reopened.outputs("ingest") == {"manifest": "m.parquet"}
    assert json.loads((tmp_path / STATE_FILE).read_text())["config_hash"] == "hash-b"


def test_phi_in_dicom_headers_stops_the_pipeline_by_policy(tmp_path, capsys):
    from medvl.data.phantom import synthesize

    cohort = tmp_path / "cohort"
    synthesize(cohort, n_2d=6, n_3d=0, seed=2, size=64, dicom_fraction=1.0)
    dicoms = sorted(cohort.rglob("*.dcm"))
    assert dicoms and pydicom.dcmread(dicoms[0]).PatientName  # the phantom headers carry (fabricated) names
    config = tmp_path / "phi.yaml"
    config.write_text(yaml.safe_dump({"sources": [{"adapter": "phantom", "path": str(cohort)}],
                                      "deid": {"policy": "refuse"}}))
    work = tmp_path / "work"
    assert main(["run", "pretrain-evaluate-register", str(config), "--work-dir", str(work), "-q"]) == 1
    err = capsys.readouterr().err
    assert "stage 'deid-check' failed" in err and "PatientName" in err and "medvl deid" in err
    assert set(json.loads((work / STATE_FILE).read_text())["stages"]) == {"ingest"}
    report = json.loads((work / "phi-check.json").read_text())
    flagged = {Path(f["where"]).name for f in report["findings"] if "PatientName" in f["fields"]}
    assert flagged == {p.name for p in dicoms}
    warn = ["deid.policy=warn", "--from", "deid-check", "--until", "deid-check"]
    assert main(["run", "pretrain-evaluate-register", str(config), "--work-dir", str(work), "-q", *warn]) == 0
    assert "WARNING (policy warn)" in capsys.readouterr().out


def test_an_unset_variable_in_a_source_path_is_named(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("MEDVL_DEMO_PHANTOM", raising=False)
    assert main(["run", "pretrain-evaluate-register", str(CONFIGS / "demo.yaml"), "--work-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "sources[0].path '${MEDVL_DEMO_PHANTOM}' needs $MEDVL_DEMO_PHANTOM, which is not set" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_relative_folder_from_a_variable_is_relative_to_the_current_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDVL_PHANTOM_DIR", "phantoms")
    config = load_pipeline_config(CONFIGS / "phantom.yaml")
    assert config.sources[0].path == str(tmp_path / "phantoms")
    assert Path(config.pretrain.config).is_file()  # written paths stay relative to the config's folder


def test_phantom_identifiers_are_named_as_fabricated_once():
    import pandas as pd

    from medvl.data.phi_policy import PhiFinding
    from pipelines.stages.data import _warning

    df = pd.DataFrame({"study_id": ["s1", "s2", "r1"], "source": ["phantom", "phantom", "covid-cxr"]})
    phantom = [PhiFinding(f"f{i}.dcm", ("PatientName",), 1, f"s{i}") for i in (1, 2)]
    line = _warning(phantom, df)
    assert "2 source(s) of synthetic studies (phantom)" in line and "fabricated" in line and "f1.dcm" not in line
    real = [*phantom, PhiFinding("r.dcm", ("PatientName",), 1, "r1")]
    assert "r.dcm" in _warning(real, df) and "fabricated" not in _warning(real, df)
