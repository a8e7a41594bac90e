"""Dataset cards, suites and few-shot fractions."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from benchx.cards import TASKS, card_files, find_card, load_card
from benchx.errors import CardError, UnknownNameError
from benchx.fractions import few_shot_indices
from benchx.suites import load_suite, suite_names

VALID = {
    "name": "tiny", "description": "a tiny phantom", "source": "phantom",
    "generate": {"n_2d": 20, "n_3d": 0, "seed": 1, "size": 64},
    "kind": "2d", "tasks": ["linear_probe", "segmentation"], "task_type": "multilabel",
    "label_space": ["Cardiomegaly"], "segmentation": {"mask": "lesion", "encoding": "bits", "classes": {"Cardiomegaly": 1}},
    "citation": "none", "licence": "none",
}


def write(tmp_path, **changes):
    data = {**VALID, **changes}
    data = {k: v for k, v in data.items() if v is not ...}
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_builtin_cards_and_suites_load():
    for name in ("phantom-2d", "phantom-3d", "phantom-quick", "covid-cxr"):
        card = find_card(name)
        assert card.name == name and set(card.tasks) <= set(TASKS)
    assert find_card("phantom-3d").kind == "3d"
    assert {"phantom", "quick", "cxr"} <= set(suite_names())
    assert load_suite("phantom").datasets == ("phantom-2d", "phantom-3d")
    assert "covid-cxr" in card_files()


def test_valid_card_defaults(tmp_path):
    card = load_card(write(tmp_path))
    assert card.fractions == (0.01, 0.1, 1.0)
    assert card.size == 128 and card.split_hash is None
    assert card.segmentation.classes == {"Cardiomegaly": 1}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"source": ...}, "source"),
        ({"source": "pacs-9"}, "source"),
        ({"split": {"rule": "coin-flip"}}, "split.rule"),
        ({"split": {"rule": "carve-val", "stratify": "Cardiomegaly"}}, "split.stratify"),
        ({"tasks": ["linear_probe", "detection"]}, "tasks"),
        ({"fractions": [0.5, 2.0]}, "fractions"),
        ({"kind": "4d"}, "kind"),
        ({"path": "/data/x"}, "path"),
        ({"segmentation": ...}, "segmentation"),
        ({"segmentation": {"classes": {"a": 300}}}, "segmentation.classes"),
        ({"preprocess": {"size": 4}}, "preprocess.size"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_card_errors_name_file_and_field(tmp_path, changes, field):
    path = write(tmp_path, **changes)
    with pytest.raises(CardError) as info:
        load_card(path)
    assert info.value.field == field
    assert str(path) in str(info.value)


def test_unset_path_variable_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCHX_TEST_ROOT", raising=False)
    card = load_card(write(tmp_path, generate=..., path="${BENCHX_TEST_ROOT}/x"))
    with pytest.raises(CardError, match="export BENCHX_TEST_ROOT"):
        card.data_path()
    monkeypatch.setenv("BENCHX_TEST_ROOT", str(tmp_path))
    assert card.data_path() == tmp_path / "x"


def test_unknown_card_and_suite_list_known_names():
    with pytest.raises(UnknownNameError, match="phantom-2d"):
        find_card("no-such-dataset")
    with pytest.raises(UnknownNameError, match="quick"):
        load_suite("no-such-suite")


def test_user_cards_folder(tmp_path, monkeypatch):
    write(tmp_path)
    (tmp_path / "card.yaml").rename(tmp_path / "tiny.yaml")
    monkeypatch.setenv("BENCHX_CARDS", str(tmp_path))
    assert find_card("tiny").description == "a tiny phantom"


def labels_fixture():
    rng = np.random.default_rng(0)
    labels = (rng.random((500, 4)) < [0.3, 0.1, 0.02, 0.004]).astype(float)
    labels[rng.random((500, 4)) < 0.1] = np.nan
    return labels


def test_fractions_keep_a_positive_and_negative_of_every_class():
    labels = labels_fixture()
    for seed in range(5):
        keep = few_shot_indices(labels, 0.01, seed, "h")
        assert len(keep) >= 5 and len(set(keep)) == len(keep)
        for j in range(labels.shape[1]):
            assert (labels[keep, j] == 1).any() and (labels[keep, j] == 0).any()


def test_fractions_deterministic_and_redrawn_per_seed_and_split():
    labels = labels_fixture()
    a = few_shot_indices(labels, 0.1, 0, "h")
    assert np.array_equal(a, few_shot_indices(labels, 0.1, 0, "h"))
    assert not np.array_equal(a, few_shot_indices(labels, 0.1, 1, "h"))
    assert not np.array_equal(a, few_shot_indices(labels, 0.1, 0, "other"))
    assert len(a) == 50
    assert np.array_equal(few_shot_indices(labels, 1.0, 3, "h"), np.arange(500))


def test_covid_cxr_card_loads_the_real_data(realdata, tmp_path):
    from benchx.data import check_label_space, freeze_split
    from benchx.datasets import load_dataset

    card = find_card("covid-cxr")
    assert card.data_path() == realdata / "cxr_covid"
    df = load_dataset(card, card.data_path())
    check_label_space(card, df)
    assert len(df) > 100 and set(df["split"]) == {"train", "val", "test"}
    assert df.groupby("patient_id")["split"].nunique().max() == 1
    assert sum(bool(ref["mask"]) for refs in df["images"] for ref in refs) >= 100
    first = freeze_split(card, df, tmp_path)
    assert freeze_split(card, df, tmp_path) == first


@pytest.mark.parametrize(
    ("kind", "labels"),
    [("2d", ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly"]),  # cardiomegaly alone sets its parent
     ("3d", ["Lung Opacity", "Pleural Effusion", "Lung Lesion"])],  # no consolidation on CT: opacity = lesion
)
def test_phantom_card_with_one_label_under_two_names_is_refused(tmp_path, kind, labels):
    path = write(tmp_path, kind=kind, label_space=labels, segmentation=..., tasks=["linear_probe"])
    with pytest.raises(CardError) as info:
        load_card(path)
    assert info.value.field == "label_space" and str(path) in str(info.value)
    assert f"'{labels[0 if kind == '3d' else 1]}' and '{labels[2]}'" in str(info.value)


def test_parent_of_several_findings_and_other_sources_keep_both_labels(tmp_path):
    card = load_card(write(tmp_path, label_space=["Lung Opacity", "Consolidation", "Lung Lesion"]))
    assert card.label_space == ("Lung Opacity", "Consolidation", "Lung Lesion")
    real = write(tmp_path, source="mimic-cxr", label_space=["Enlarged Cardiomediastinum", "Cardiomegaly"])
    assert len(load_card(real).label_space) == 2  # distinct observations in real reports


def test_segmentation_classes_sharing_a_mask_code_are_refused(tmp_path):
    seg = {"mask": "lesion", "encoding": "bits", "classes": {"Cardiomegaly": 1, "Heart": 1}}
    with pytest.raises(CardError, match="'Cardiomegaly' and 'Heart' have the same mask code 1") as info:
        load_card(write(tmp_path, segmentation=seg))
    assert info.value.field == "segmentation.classes"


def test_shipped_cards_count_each_label_once():
    for path in card_files().values():
        load_card(path)  # raises on a label listed under two names
    assert "Enlarged Cardiomediastinum" not in find_card("phantom-2d").label_space
    assert "Cardiomegaly" in find_card("phantom-2d").label_space
