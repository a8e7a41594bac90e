"""Patient-level train/val/test splits, deterministic by a hash of the patient id.

Each patient falls into a split by where ``sha256(salt, patient_id)`` lands in ``[0, 1)`` against the
cumulative fractions, so a patient's split depends on nothing but its id and the salt: it is the same on
every run, machine and shard layout, and stays put when new patients join the cohort. The split sizes are
therefore close to, not exactly, the fractions (a binomial draw per patient). A split given by the source
(MIMIC-CXR's split CSV) is kept, and covers every study of that patient.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import pandas as pd

from medvl.data.manifest import SPLITS, ManifestError

DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
DEFAULT_SALT = "medvl"


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """``fractions`` as a (train, val, test) triple; raises ``ValueError`` unless three values >= 0 summing to 1."""
    values = tuple(float(f) for f in fractions)
    if len(values) != len(SPLITS) or any(not math.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"split fractions {fractions!r}: need three non-negative numbers (train, val, test)")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"split fractions {fractions!r} sum to {sum(values):.6g}, not 1")
    return values  # type: ignore[return-value]


def patient_position(patient_id: str, salt: str = DEFAULT_SALT) -> float:
    """Where a patient lands in ``[0, 1)``: the first 8 bytes of ``sha256(salt NUL patient_id)``."""
    digest = hashlib.sha256(f"{salt}\0{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_for_patient(
    patient_id: str, fractions: Sequence[float] = DEFAULT_FRACTIONS, salt: str = DEFAULT_SALT
) -> str:
    """The split (``train``/``val``/``test``) a patient falls into by hash."""
    position = patient_position(patient_id, salt)
    used = [(name, f) for name, f in zip(SPLITS, check_fractions(fractions), strict=True) if f > 0]
    cumulative = 0.0
    for name, fraction in used:
        cumulative += fraction
        if position < cumulative:
            return name
    return used[-1][0]  # the fractions summed to a hair under 1 in floating point


def upstream_splits(df: pd.DataFrame) -> dict[str, str]:
    """The split each patient has in the source; raises :class:`ManifestError` if a patient has two."""
    given = df.loc[df["split"].fillna("") != "", ["patient_id", "split"]].drop_duplicates()
    clash = given["patient_id"][given["patient_id"].duplicated()]
    if len(clash):
        patient = clash.iloc[0]
        names = sorted(given.loc[given["patient_id"] == patient, "split"])
        raise ManifestError(f"patient '{patient}' is in splits {names} in the source; a patient must be in one split")
    return dict(zip(given["patient_id"], given["split"], strict=True))


def assign_splits(
    df: pd.DataFrame, fractions: Sequence[float] = DEFAULT_FRACTIONS, salt: str = DEFAULT_SALT
) -> pd.DataFrame:
    """A copy of a manifest with every study's ``split`` set at patient level.

    A patient with a split from the source keeps it for all its studies; any other patient gets
    :func:`split_for_patient`.

    Args:
        df: manifest rows (``patient_id`` and ``split`` columns; ``split`` empty where the source gives none).
        fractions: approximate (train, val, test) shares of patients.
        salt: changes the draw; the same salt always gives the same splits.

    Raises:
        ValueError: bad fractions.
        ManifestError: the source puts one patient in two splits.
    """
    check_fractions(fractions)
    given = upstream_splits(df)
    out = df.copy()
    out["split"] = [
        given.get(patient) or split_for_patient(patient, fractions, salt) for patient in out["patient_id"]
    ]
    return out


def check_patient_splits(df: pd.DataFrame) -> None:
    """Raise :class:`ManifestError` naming a patient whose studies are in more than one split."""
    per_patient = df.groupby("patient_id")["split"].nunique()
    leaking = per_patient[per_patient > 1]
    if len(leaking):
        patient = leaking.index[0]
        names = sorted(set(df.loc[df["patient_id"] == patient, "split"]))
        raise ManifestError(f"patient '{patient}' has studies in splits {names}")
