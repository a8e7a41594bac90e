"""What a phantom study has planted: finding names with side, severity, region and size, drawn from an RNG.

The attributes are semantic (``left``, ``moderate``, ``lower``); the renderers turn them into pixels and the
report writer into words, so the image, the mask, the labels and the report all come from one
:class:`Finding`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from medvl.data.phantom.labels import LIVER_LESION

SEVERITIES = ("mild", "moderate", "severe")
SIDES = ("right", "left")
CXR_FINDINGS = ("Cardiomegaly", "Pleural Effusion", "Consolidation", "Lung Lesion", "Pneumothorax")
CT_FINDINGS = ("Lung Lesion", "Pleural Effusion", LIVER_LESION)
# Lobes as (side, lobe); the middle lobe exists on the right only.
LOBES = (("right", "upper"), ("right", "middle"), ("right", "lower"), ("left", "upper"), ("left", "lower"))
LUNG_ZONES = ("upper", "mid", "lower")

_P_NORMAL = 0.3
_COUNT_WEIGHTS = {1: 0.6, 2: 0.3, 3: 0.1}
_SEVERITY_WEIGHTS = (0.35, 0.4, 0.25)
_SIDE_WEIGHTS = {"right": 0.4, "left": 0.4, "bilateral": 0.2}


@dataclass(frozen=True)
class Finding:
    """One planted finding.

    Attributes:
        name: observation name (a key of :data:`medvl.data.phantom.labels.MASK_BITS`).
        side: ``right``, ``left`` or ``bilateral`` (patient's side); empty for the heart.
        severity: ``mild``, ``moderate`` or ``severe``; mild findings are subtle and may be reported with
            uncertainty.
        region: lobe (``upper``/``middle``/``lower``) for consolidation and CT nodules, lung zone
            (``upper``/``mid``/``lower``) for radiograph nodules, hepatic lobe (``right``/``left``) for liver
            lesions; empty otherwise.
        size_cm: diameter of a nodule or liver lesion in cm (one decimal), 0 otherwise.
    """

    name: str
    side: str = ""
    severity: str = "moderate"
    region: str = ""
    size_cm: float = 0.0

    @property
    def subtle(self) -> bool:
        """True for mild findings: the only ones a report may mention with uncertainty."""
        return self.severity == "mild"

    def as_dict(self) -> dict:
        """The finding as a JSON-ready dict."""
        return asdict(self)


def _pick(rng: np.random.Generator, weights: dict) -> str | int:
    keys = list(weights)
    return keys[int(rng.choice(len(keys), p=np.asarray(list(weights.values())) / sum(weights.values())))]


def _severity(rng: np.random.Generator) -> str:
    return SEVERITIES[int(rng.choice(3, p=_SEVERITY_WEIGHTS))]


def _size_severity(size_cm: float, mild_below: float, severe_from: float) -> str:
    if size_cm < mild_below:
        return "mild"
    return "severe" if size_cm >= severe_from else "moderate"


def _chosen_names(rng: np.random.Generator, names: tuple[str, ...], max_count: int) -> list[str]:
    if rng.random() < _P_NORMAL:
        return []
    count = min(int(_pick(rng, {k: w for k, w in _COUNT_WEIGHTS.items() if k <= max_count})), len(names))
    order = rng.permutation(len(names))[:count]
    return [names[i] for i in sorted(order)]


def _effusion(rng: np.random.Generator) -> Finding:
    return Finding("Pleural Effusion", side=str(_pick(rng, _SIDE_WEIGHTS)), severity=_severity(rng))


def _effusion_sides(findings: list[Finding]) -> set[str]:
    sides = {f.side for f in findings if f.name == "Pleural Effusion"}
    return set(SIDES) if "bilateral" in sides else sides


def _cxr_finding(rng: np.random.Generator, name: str, planted: list[Finding]) -> Finding | None:
    wet = _effusion_sides(planted)
    if name == "Cardiomegaly":
        return Finding(name, severity=_severity(rng))
    if name == "Pleural Effusion":
        return _effusion(rng)
    if name == "Pneumothorax":
        dry = [s for s in SIDES if s not in wet]
        return Finding(name, side=dry[int(rng.integers(len(dry)))], severity=_severity(rng)) if dry else None
    if name == "Consolidation":
        # Keep consolidation out of the effusion's territory so that both stay visible.
        lobes = [lobe for lobe in LOBES if not (lobe[0] in wet and lobe[1] != "upper")]
        side, lobe = lobes[int(rng.integers(len(lobes)))]
        return Finding(name, side=side, severity=_severity(rng), region=lobe)
    size = round(float(rng.uniform(1.4, 3.0)), 1)
    return Finding(
        name,
        side=SIDES[int(rng.integers(2))],
        severity=_size_severity(size, 2.0, 2.5),
        region=LUNG_ZONES[int(rng.integers(len(LUNG_ZONES)))],
        size_cm=size,
    )


def sample_cxr_findings(rng: np.random.Generator) -> tuple[Finding, ...]:
    """Findings for one chest radiograph: none (a normal study, 30 %) or one to three different ones."""
    planted: list[Finding] = []
    # Effusion first: pneumothorax, consolidation and nodule placement avoid its side.
    names = sorted(_chosen_names(rng, CXR_FINDINGS, 3), key=lambda n: n != "Pleural Effusion")
    for name in names:
        finding = _cxr_finding(rng, name, planted)
        if finding is not None:
            planted.append(finding)
    return tuple(planted)


def sample_ct_findings(rng: np.random.Generator) -> tuple[Finding, ...]:
    """Findings for one chest/upper-abdomen CT: none (30 %) or one or two of nodule, effusion, liver lesion."""
    planted: list[Finding] = []
    for name in _chosen_names(rng, CT_FINDINGS, 2):
        if name == "Pleural Effusion":
            planted.append(_effusion(rng))
        elif name == "Lung Lesion":
            size = round(float(rng.uniform(0.8, 2.5)), 1)
            side, lobe = LOBES[int(rng.integers(len(LOBES)))]
            severity = _size_severity(size, 1.2, 2.0)
            planted.append(Finding(name, side=side, severity=severity, region=lobe, size_cm=size))
        else:
            size = round(float(rng.uniform(1.0, 4.0)), 1)
            lobe = SIDES[int(rng.integers(2))]
            planted.append(Finding(name, severity=_size_severity(size, 1.5, 3.0), region=lobe, size_cm=size))
    return tuple(planted)
