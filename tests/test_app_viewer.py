"""Viewer rendering (window, overlay, strips), study facts without identifiers, orientation labels, settings."""

from __future__ import annotations

import numpy as np
import pytest

from app.settings import AppSettings, settings_from_env
from app.study import build_study, deidentified_facts, path_hash
from app.viewer import auto_window, edge_caption, overlay, relevance_strip, resolve_window, window_choices
from medvl.io import load
from tests.app_support import ct_series, dicom_radiograph


def test_windows_presets_and_manual():
    hu = np.linspace(-1000, 1000, 10_000, dtype=np.float32).reshape(1, 100, 100)
    assert window_choices("CT")[:2] == ["auto", "lung"] and "manual" in window_choices("DX")
    assert resolve_window("lung", hu) == (-600.0, 1500.0)
    assert resolve_window("manual", hu, (40, 0.2)) == (40.0, 1.0)
    center, width = auto_window(hu)
    assert center == pytest.approx(0, abs=1) and width == pytest.approx(1980, rel=0.01)
    with pytest.raises(ValueError, match="choose auto"):
        resolve_window("soft", hu)


def test_overlay_blends_the_heatmap_at_the_given_opacity():
    grey = np.full((4, 5), 0.5, np.float32)
    heat = np.arange(20, dtype=np.float32).reshape(4, 5)
    assert overlay(grey, heat, 0.0).tolist() == overlay(grey, None, 0.7).tolist()
    full = overlay(grey, heat, 1.0)
    assert full.shape == (4, 5, 3) and full.dtype == np.uint8 and full[0, 0, 2] > full[0, 0, 0]  # jet: low = blue
    assert full[-1, -1, 0] > full[-1, -1, 2]  # high = red
    with pytest.raises(ValueError, match="shape"):
        overlay(grey, heat[:2], 0.5)
    strip = relevance_strip(np.array([0.1, 0.9, 0.2]), current=1, height=10, cell=4)
    assert strip.shape == (10, 12, 3) and tuple(strip[-1, 5]) == (255, 51, 51)


def test_study_facts_never_show_identifiers_and_labels_follow_the_affine(tmp_path):
    series = tmp_path / "series"
    ct_series(series, depth=4)
    record = load(series)
    study = build_study(record, series, "series.zip", "upload", path_hash(series))
    assert study.is_volume and study.slices.shape == (4, 32, 32)
    assert study.orientation == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert edge_caption(study.orientation) == "Top: A · Bottom: P · Left: R · Right: L"
    text = repr(study.facts)
    assert "DOE" not in text and "MRN" not in text and record.metadata["study_uid"] not in text
    assert {"PatientName", "PatientID"} <= set(study.identifiers_present)
    dx = load(dicom_radiograph(tmp_path / "x.dcm"))
    facts = deidentified_facts(dx, np.zeros((1, 64, 64)))
    assert "1950" not in repr(facts) and facts["modality"] == "DX"
    assert deidentified_facts(dx.__class__(dx.array, dx.affine, metadata={**dx.metadata, "patient_age": "095Y"}),
                              np.zeros((1, 2, 2)))["patient_age"] == "90+"  # fmt: skip


def test_settings_from_env_and_back():
    settings = AppSettings(model="models:/m@champion", manifest=None, max_upload_mb=5)
    assert settings_from_env(settings.as_env()) == settings
    assert settings_from_env({}).model == "models:/medvl@champion"
    with pytest.raises(ValueError, match="MEDVL_REVIEW_PROMPTS"):
        settings_from_env({"MEDVL_REVIEW_PROMPTS": "other"})
    with pytest.raises(ValueError, match="MAX_UPLOAD_MB"):
        settings_from_env({"MEDVL_REVIEW_MAX_UPLOAD_MB": "lots"})
