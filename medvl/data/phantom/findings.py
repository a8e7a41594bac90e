"""What a phantom study has planted: finding names with side, severity, region and size, drawn from an RNG.

The attributes are semantic (``left``, ``moderate``, ``lower``); the renderers turn them into pixels and the
report writer into words, so the image, the mask, the labels and the report all come from one
:class:`Finding`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from medvl.data.phantom.labels import ASCITES, KIDNEY_CYST, LIVER_LESION, LYMPHADENOPATHY

SEVERITIES = ("mild", "moderate", "severe")
SIDES = ("right", "left")
CXR_FINDINGS = ("Cardiomegaly", "Pleural Effusion", "Consolidation", "Lung Lesion", "Pneumothorax")
CT_FINDINGS = ("Lung Lesion", "Pleural Effusion", LIVER_LESION, KIDNEY_CYST, ASCITES, LYMPHADENOPATHY)
# Findings at one place with a size (reported with location and size); effusion and ascites are diffuse.
FOCAL_CT_FINDINGS = ("Lung Lesion", LIVER_LESION, KIDNEY_CYST, LYMPHADENOPATHY)
# Lobes as (side, lobe); the middle lobe exists on the right only.
LOBES = (("right", "upper"), ("right", "middle"), ("right", "lower"), ("left", "upper"), ("left", "lower"))
LUNG_ZONES = ("upper", "mid", "lower")
NODE_STATIONS = ("hilar", "paratracheal")

# Share of normal studies and weights of the number of different findings in the others.
_CXR_MIX = (0.3, {1: 0.6, 2: 0.3, 3: 0.1})
_CT_MIX = (0.25, {1: 0.4, 2: 0.32, 3: 0.18, 4: 0.1})
_SEVERITY_WEIGHTS = (0.35, 0.4, 0.25)
_SIDE_WEIGHTS = {"right": 0.4, "left": 0.4, "bilateral": 0.2}


@dataclass(frozen=True)
class Finding:
    """One planted finding.

    Attributes:
        name: observation name (a key of :data:`medvl.data.phantom.labels.MASK_BITS`).
        side: ``right``, ``left`` or ``bilateral`` (patient's side); empty for the heart and ascites.
        severity: ``mild``, ``moderate`` or ``severe``; mild findings are subtle and may be reported with
            uncertainty.
        region: lobe (``upper``/``middle``/``lower``) for consolidation and CT nodules, lung zone
            (``upper``/``mid``/``lower``) for radiograph nodules, hepatic lobe (``right``/``left``) for liver
            lesions, lymph node station (``hilar``/``paratracheal``) for lymphadenopathy; empty otherwise.
        size_cm: in cm (one decimal): diameter of a nodule, liver lesion or kidney cyst, short axis of an
            enlarged lymph node; 0 otherwise.
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


def _chosen_names(
    rng: np.random.Generator, names: tuple[str, ...], mix: tuple[float, dict[int, float]]
) -> list[str]:
    p_normal, count_weights = mix
    if rng.random() < p_normal:
        return []
    count = min(int(_pick(rng, count_weights)), len(names))
    order = rng.permutation(len(names))[:count]
    return [names[i] for i in sorted(order)]


def _effusion(rng: np.random.Generator) -> Finding:
    return Finding("Pleural Effusion", side=str(_pick(rng, _SIDE_WEIGHTS)), severity=_severity(rng))


def _effusion_sides(findings: list[Finding]) -> set[str]:
    sides = {f.side for f in findings if f.name == "Pleural Effusion"}
    return set(SIDES) if "bilateral" in sides else sides


def _cxr_finding(
    rng: np.random.Generator, name: str, planted: list[Finding], given: Finding | None = None
) -> Finding | None:
    """A radiograph finding placed so that it stays visible next to ``planted``; the side, severity, region and
    size of ``given`` (read from a report) are kept where the placement allows, the rest drawn."""
    wet = _effusion_sides(planted)
    side, severity = (given.side, given.severity) if given is not None else ("", "")
    if name == "Cardiomegaly":
        return Finding(name, severity=severity or _severity(rng))
    if name == "Pleural Effusion":
        drawn = _effusion(rng)
        return Finding(name, side=side or drawn.side, severity=severity or drawn.severity)
    if name == "Pneumothorax":
        dry = [s for s in SIDES if s not in wet]
        if not dry:
            return None
        chosen = side if side in dry else dry[int(rng.integers(len(dry)))]
        return Finding(name, side=chosen, severity=severity or _severity(rng))
    if name == "Consolidation":
        # Keep consolidation out of the effusion's territory so that both stay visible.
        lobes = [lobe for lobe in LOBES if not (lobe[0] in wet and lobe[1] != "upper")]
        if given is not None:
            lobes = [lobe for lobe in lobes if side in ("", lobe[0])] or lobes
            lobes = [lobe for lobe in lobes if given.region in ("", lobe[1])] or lobes
        lobe_side, lobe = lobes[int(rng.integers(len(lobes)))]
        return Finding(name, side=lobe_side, severity=severity or _severity(rng), region=lobe)
    size = given.size_cm if given is not None and given.size_cm else round(float(rng.uniform(1.4, 3.0)), 1)
    zone = given.region if given is not None and given.region in LUNG_ZONES else ""
    return Finding(
        name,
        side=side if side in SIDES else SIDES[int(rng.integers(2))],
        severity=_size_severity(size, 2.0, 2.5),
        region=zone or LUNG_ZONES[int(rng.integers(len(LUNG_ZONES)))],
        size_cm=size,
    )


def place_cxr_findings(rng: np.random.Generator, wanted: list[Finding]) -> tuple[Finding, ...]:
    """Place findings read from a report (name, and side / severity / region / size where the text gives
    them) as :func:`sample_cxr_findings` places drawn ones."""
    planted: list[Finding] = []
    for given in sorted(wanted, key=lambda f: f.name != "Pleural Effusion"):
        finding = _cxr_finding(rng, given.name, planted, given)
        if finding is not None:
            planted.append(finding)
    return tuple(planted)


def sample_cxr_findings(rng: np.random.Generator) -> tuple[Finding, ...]:
    """Findings for one chest radiograph: none (a normal study, 30 %) or one to three different ones."""
    planted: list[Finding] = []
    # Effusion first: pneumothorax, consolidation and nodule placement avoid its side.
    names = sorted(_chosen_names(rng, CXR_FINDINGS, _CXR_MIX), key=lambda n: n != "Pleural Effusion")
    for name in names:
        finding = _cxr_finding(rng, name, planted)
        if finding is not None:
            planted.append(finding)
    return tuple(planted)


def _ct_finding(rng: np.random.Generator, name: str) -> Finding:
    if name == "Pleural Effusion":
        return _effusion(rng)
    if name == ASCITES:
        return Finding(name, severity=_severity(rng))
    if name == "Lung Lesion":
        size = round(float(rng.uniform(0.8, 2.5)), 1)
        side, lobe = LOBES[int(rng.integers(len(LOBES)))]
        return Finding(name, side=side, severity=_size_severity(size, 1.2, 2.0), region=lobe, size_cm=size)
    if name == LIVER_LESION:
        size = round(float(rng.uniform(1.0, 4.0)), 1)
        lobe = SIDES[int(rng.integers(2))]
        return Finding(name, severity=_size_severity(size, 1.5, 3.0), region=lobe, size_cm=size)
    side = SIDES[int(rng.integers(2))]
    if name == KIDNEY_CYST:
        size = round(float(rng.uniform(1.5, 5.0)), 1)
        return Finding(name, side=side, severity=_size_severity(size, 2.5, 4.0), size_cm=size)
    size = round(float(rng.uniform(1.5, 3.5)), 1)  # lymph node short axis
    station = NODE_STATIONS[int(rng.integers(len(NODE_STATIONS)))]
    return Finding(name, side=side, severity=_size_severity(size, 2.0, 3.0), region=station, size_cm=size)


def sample_ct_findings(rng: np.random.Generator) -> tuple[Finding, ...]:
    """Findings for one chest/abdomen CT: none (25 %) or one to four different ones of :data:`CT_FINDINGS`
    (one or two most often)."""
    return tuple(_ct_finding(rng, name) for name in _chosen_names(rng, CT_FINDINGS, _CT_MIX))
