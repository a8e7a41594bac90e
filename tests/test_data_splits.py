"""Patient-level splits: deterministic by patient hash, never a patient in two splits, source splits kept."""

from __future__ import annotations

import pandas as pd
import pytest

from medvl.data.manifest import ManifestError
from medvl.data.splits import (
    assign_splits,
    check_fractions,
    check_patient_splits,
    patient_position,
    split_for_patient,
)


def cohort(n_patients: int, studies_per_patient: int = 3) -> pd.DataFrame:
    rows = [{"patient_id": f"P{p}", "study_id": f"P{p}-S{s}", "split": ""}
            for p in range(n_patients) for s in range(studies_per_patient)]
    return pd.DataFrame(rows)


def test_no_patient_in_two_splits_and_fractions_roughly_kept():
    df = assign_splits(cohort(4000), (0.7, 0.2, 0.1))
    check_patient_splits(df)
    assert df.groupby("patient_id")["split"].nunique().max() == 1
    shares = df.drop_duplicates("patient_id")["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.7, abs=0.03)
    assert shares["val"] == pytest.approx(0.2, abs=0.03)
    assert shares["test"] == pytest.approx(0.1, abs=0.03)


def test_same_input_same_splits_whatever_the_row_order_or_cohort_size():
    df = cohort(300)
    first = assign_splits(df).set_index("study_id")["split"]
    shuffled = assign_splits(df.sample(frac=1.0, random_state=3)).set_index("study_id")["split"]
    assert first.sort_index().equals(shuffled.sort_index())
    # a patient keeps its split when the cohort grows (the draw depends on its own id only)
    grown = assign_splits(cohort(600)).set_index("study_id")["split"]
    assert grown.loc[first.index].equals(first)


def test_hash_is_pinned_across_machines_and_versions():
    # sha256("medvl\0P0"): fixed values guard the documented scheme against accidental change
    assert patient_position("P0") == pytest.approx(0.8907264212747602, abs=1e-15)
    assert [split_for_patient(p) for p in ("P0", "P1", "P2", "P4", "P5")] == ["val", "train", "test", "val", "test"]


def test_salt_changes_the_draw():
    a = assign_splits(cohort(200), salt="one")["split"]
    b = assign_splits(cohort(200), salt="two")["split"]
    assert (a != b).any()


def test_source_split_is_kept_and_covers_all_studies_of_the_patient():
    df = cohort(50)
    df.loc[df["study_id"] == "P0-S0", "split"] = "test"
    df.loc[df["patient_id"] == "P1", "split"] = "val"
    out = assign_splits(df, (1.0, 0.0, 0.0))
    assert set(out.loc[out["patient_id"] == "P0", "split"]) == {"test"}
    assert set(out.loc[out["patient_id"] == "P1", "split"]) == {"val"}
    assert set(out.loc[~out["patient_id"].isin(["P0", "P1"]), "split"]) == {"train"}
    assert df.loc[df["study_id"] == "P0-S1", "split"].item() == ""  # the input is not modified


def test_source_putting_a_patient_in_two_splits_is_refused():
    df = cohort(3)
    df.loc[df["study_id"] == "P2-S0", "split"] = "train"
    df.loc[df["study_id"] == "P2-S1", "split"] = "test"
    with pytest.raises(ManifestError, match=r"patient 'P2' is in splits \['test', 'train'\]"):
        assign_splits(df)


def test_check_patient_splits_names_the_leaking_patient():
    df = cohort(2).assign(split=["train", "train", "train", "train", "val", "train"])
    with pytest.raises(ManifestError, match="patient 'P1' has studies in splits"):
        check_patient_splits(df)


@pytest.mark.parametrize("fractions", [(0.8, 0.1), (0.8, 0.3, 0.1), (1.2, -0.1, -0.1), (float("nan"), 0.5, 0.5)])
def test_bad_fractions_are_refused(fractions):
    with pytest.raises(ValueError, match="split fractions"):
        check_fractions(fractions)


def test_zero_fraction_split_stays_empty():
    out = assign_splits(cohort(500), (0.5, 0.0, 0.5))
    assert set(out["split"]) == {"train", "test"}
