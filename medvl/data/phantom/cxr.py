"""2D chest-radiograph-like phantoms: anatomy, pose and planted findings rendered to pixels and exact masks.

Geometry lives in normalised coordinates: the image spans ``[-1, 1]`` on both axes, ``u`` to the image right
(the patient's left on a PA/AP view) and ``v`` downwards, so one study looks the same at any pixel size. The
renderer builds a density map (dark = air, bright = dense), draws each finding into it together with its mask
from the same boolean region, adds bones, blur and noise, and maps densities to ``[0, 1]`` brightness.
Findings that do not fit (no room left in the requested lung zone) are moved or dropped, and the renderer
returns the findings it actually drew, so labels and reports are always built from what is in the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from medvl.data.phantom.findings import Finding
from medvl.data.phantom.labels import MASK_BITS
from medvl.data.phantom.shapes import ellipse, inner_distance, pick_point, smooth_noise

CTR_BY_SEVERITY = {"mild": (0.55, 0.58), "moderate": (0.58, 0.63), "severe": (0.63, 0.70)}
EFFUSION_HEIGHT = {"mild": (0.13, 0.18), "moderate": (0.25, 0.32), "severe": (0.42, 0.52)}
PNEUMOTHORAX_WIDTH = {"mild": 0.07, "moderate": 0.10, "severe": 0.14}
CONSOLIDATION_RADIUS = {"mild": 0.11, "moderate": 0.14, "severe": 0.18}
CONSOLIDATION_DENSITY = {"mild": 0.32, "moderate": 0.40, "severe": 0.48}
# Vertical position of lobes and lung zones as fractions of lung height from the apex.
LOBE_BANDS = {"upper": (0.08, 0.45), "middle": (0.50, 0.75), "lower": (0.58, 0.88)}
ZONE_BANDS = {"upper": (0.10, 0.38), "mid": (0.38, 0.62), "lower": (0.62, 0.85)}
NODULE_DENSITY = 0.38
AP_HEART_MAGNIFICATION = 1.06

_SOFT, _MEDIASTINUM, _ABDOMEN, _LUNG, _FLUID, _PTX_AIR, _PLEURAL_LINE = (
    0.45,
    0.70,
    0.62,
    0.16,
    0.60,
    0.03,
    0.22,
)


@dataclass(frozen=True)
class CxrAnatomy:
    """A patient's chest in normalised units (shared by all studies of the patient)."""

    body_width: float
    lung_offset: float
    lung_width: float
    lung_height: float
    lung_center: float
    dome_height: float
    right_dome_raise: float
    heart_ctr: float
    heart_aspect: float
    heart_tilt: float
    mediastinum_width: float
    rib_start: float
    rib_step: float
    fov_mm: float


@dataclass(frozen=True)
class CxrPose:
    """How one study was taken: view, patient position in the field, exposure."""

    view: str
    shift: tuple[float, float]
    scale: float
    angle: float
    contrast: float
    brightness: float
    gamma: float
    noise: float


@dataclass
class CxrRender:
    """A rendered radiograph: brightness in ``[0, 1]`` (rows, cols), bit-coded mask, the findings drawn."""

    image: np.ndarray
    mask: np.ndarray
    findings: tuple[Finding, ...]


def sample_cxr_anatomy(rng: np.random.Generator) -> CxrAnatomy:
    """A random normal chest (cardiothoracic ratio 0.40-0.47)."""
    u = rng.uniform
    return CxrAnatomy(
        body_width=u(0.90, 0.98),
        lung_offset=u(0.38, 0.44),
        lung_width=u(0.29, 0.34),
        lung_height=u(0.58, 0.68),
        lung_center=u(-0.12, -0.02),
        dome_height=u(0.06, 0.11),
        right_dome_raise=u(0.02, 0.06),
        heart_ctr=u(0.40, 0.47),
        heart_aspect=u(0.70, 0.82),
        heart_tilt=u(0.20, 0.45),
        mediastinum_width=u(0.085, 0.11),
        rib_start=u(-0.62, -0.55),
        rib_step=u(0.105, 0.125),
        fov_mm=u(350.0, 430.0),
    )


def sample_cxr_pose(rng: np.random.Generator, view: str) -> CxrPose:
    """A random position and exposure; AP (portable) views get lower contrast and more noise."""
    portable = view == "AP"
    return CxrPose(
        view=view,
        shift=(float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.05, 0.05))),
        scale=float(rng.uniform(0.92, 1.04)),
        angle=float(np.deg2rad(rng.uniform(-4.0, 4.0))),
        contrast=float(rng.uniform(0.75, 0.95) if portable else rng.uniform(0.9, 1.15)),
        brightness=float(rng.uniform(-0.06, 0.06)),
        gamma=float(rng.uniform(0.8, 1.25)),
        noise=float(rng.uniform(0.015, 0.035) if portable else rng.uniform(0.008, 0.022)),
    )


class _Chest:
    """Anatomical regions of one study on its pixel grid (booleans and coordinates)."""

    def __init__(self, anatomy: CxrAnatomy, pose: CxrPose, heart_ctr: float, size: int) -> None:
        a = anatomy
        axis = (np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0
        x, y = axis[None, :] - pose.shift[0], axis[:, None] - pose.shift[1]
        c, s = np.cos(pose.angle), np.sin(pose.angle)
        self.u = ((x * c + y * s) / pose.scale).astype(np.float32)
        self.v = ((y * c - x * s) / pose.scale).astype(np.float32)
        self.size, self.scale, self.a = size, pose.scale, a
        self.apex = a.lung_center - a.lung_height
        self.base = {"right": a.lung_center + 0.78 * a.lung_height - a.right_dome_raise}
        self.base["left"] = self.base["right"] + a.right_dome_raise
        self.center_u = {"right": -a.lung_offset, "left": a.lung_offset}
        u, v = self.u, self.v
        self.body = ((u / a.body_width) ** 4 + ((v - 0.2) / 1.45) ** 4 < 1) | ((np.abs(u) < 0.22) & (v < 0))
        self.abdomen = self.body & (v > np.where(u < 0, self._dome(u, "right"), self._dome(u, "left")))
        heart_width = (
            heart_ctr
            * (a.lung_offset + a.lung_width)
            * (AP_HEART_MAGNIFICATION if pose.view == "AP" else 1.0)
        )
        rx = heart_width / np.sqrt(np.cos(a.heart_tilt) ** 2 + (a.heart_aspect * np.sin(a.heart_tilt)) ** 2)
        ry = a.heart_aspect * rx
        self.heart = (
            ellipse(u, v, 0.25 * heart_width, self.base["left"] - 0.85 * ry, rx, ry, a.heart_tilt) < 1
        ) & ~self.abdomen
        widen = 1.0 + 0.3 * np.clip((v + 0.2) / 0.5, 0.0, 1.0)
        self.mediastinum = (np.abs(u - 0.02) < a.mediastinum_width * widen) | (
            ellipse(u, v, 0.1, a.lung_center - 0.25, 0.06, 0.06) < 1
        )
        self.mediastinum &= self.body & ~self.abdomen
        self.outline = {side: self._lung(side) for side in ("right", "left")}
        self.lung = {side: self.outline[side] & ~self.heart & ~self.mediastinum for side in self.outline}

    def _dome(self, u: np.ndarray, side: str) -> np.ndarray:
        reach = 1.15 * self.a.lung_width
        return self.base[side] - self.a.dome_height * (1.0 - ((u - self.center_u[side]) / reach) ** 2)

    def _lung(self, side: str) -> np.ndarray:
        a, u, v = self.a, self.u, self.v
        taper = 0.62 + 0.38 * np.sqrt(np.clip((v - self.apex) / (1.2 * a.lung_height), 0.0, 1.0))
        shape = ((u - self.center_u[side]) / (a.lung_width * taper)) ** 2 + (
            (v - a.lung_center) / a.lung_height
        ) ** 2 < 1
        return shape & (v < self._dome(u, side))

    def height_fraction(self, side: str) -> np.ndarray:
        """Vertical position as a fraction of the lung height from the apex (0) to the base (1)."""
        return (self.v - self.apex) / (self.base[side] - self.apex)

    def lateral(self, side: str) -> np.ndarray:
        """Position across the lung: -1 medial edge, 0 centre, 1 lateral edge."""
        sign = -1.0 if side == "right" else 1.0
        return sign * (self.u - self.center_u[side]) / self.a.lung_width

    def depth(self, region: np.ndarray) -> np.ndarray:
        """Distance to the region's edge in normalised units."""
        return inner_distance(region) * (2.0 / (self.scale * self.size))

    def bones(self) -> np.ndarray:
        """Density added by ribs, clavicles and spine."""
        a, u, v = self.a, self.u, self.v
        t = np.abs(u)
        thorax = (
            self.body
            & (t < a.lung_offset + a.lung_width + 0.05)
            & (t > 0.06)
            & (v < self.base["left"] + 0.05)
        )
        # Ten posterior ribs: the nearest rib's centre line is k steps below the first one.
        offset = (v + 0.12 * t - 0.55 * t**2 - a.rib_start) / a.rib_step
        k = np.clip(np.rint(offset), 0, 9)
        ribs = (np.abs(offset - k) * a.rib_step < 0.018 + 0.002 * k) & thorax
        clavicle = (
            (np.abs(v - (a.lung_center - a.lung_height * 1.05 + 0.18 * t)) < 0.022) & (t < 0.55) & self.body
        )
        spine = self.body & (t < 0.055)
        behind_heart = self.heart | self.mediastinum
        return np.where(behind_heart, 0.04, 0.11) * ribs + 0.13 * clavicle + 0.12 * spine


def _markings(chest: _Chest, rng: np.random.Generator) -> np.ndarray:
    """Lung vessels: branching ridges of smooth noise, denser near the hila."""
    size = chest.size
    ridges = np.exp(-((smooth_noise(rng, (size, size), 1.2 * size / 256) / 0.35) ** 2))
    hila = sum(
        np.exp(-((chest.u - sign * 0.14) ** 2 + (chest.v - chest.a.lung_center - 0.05) ** 2) / 0.16)
        for sign in (-1, 1)
    )
    return (0.09 * ridges * (0.35 + 0.65 * hila) + 0.05 * hila**4).astype(np.float32)


def _draw_effusion(
    chest: _Chest, density: np.ndarray, finding: Finding, rng: np.random.Generator
) -> np.ndarray:
    lo, hi = EFFUSION_HEIGHT[finding.severity]
    fraction = rng.uniform(lo, hi)
    region = np.zeros_like(density, dtype=bool)
    for side in ("right", "left") if finding.side == "bilateral" else (finding.side,):
        height = chest.base[side] - chest.apex
        meniscus = chest.base[side] - fraction * height * (
            1.0 + 0.35 * np.clip(chest.lateral(side), 0.0, 1.0)
        )
        region |= chest.lung[side] & (chest.v > meniscus)
    density[region] = _FLUID + 0.04 * np.clip((chest.v[region] - chest.apex) / 2.0, 0.0, 1.0)
    return region


def _draw_pneumothorax(chest: _Chest, density: np.ndarray, finding: Finding) -> np.ndarray:
    lung, height = chest.lung[finding.side], chest.height_fraction(finding.side)
    width = PNEUMOTHORAX_WIDTH[finding.severity] * np.clip((0.85 - height) / 0.85, 0.0, 1.0) ** 0.6
    depth = chest.depth(chest.outline[finding.side])  # from the chest wall, not from the heart border
    region = lung & (chest.lateral(finding.side) > -0.2) & (depth < width)
    line = region & (depth > width - 2.0 / (chest.scale * chest.size))  # one pixel: the visceral pleura
    density[region] = _PTX_AIR
    density[line] = _PLEURAL_LINE
    return region


def _free_lung(chest: _Chest, side: str, taken: np.ndarray) -> np.ndarray:
    return chest.lung[side] & ~taken


def _draw_consolidation(
    chest: _Chest, density: np.ndarray, finding: Finding, taken: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, Finding] | None:
    radius = CONSOLIDATION_RADIUS[finding.severity] * rng.uniform(0.85, 1.15)
    free = _free_lung(chest, finding.side, taken)
    room = chest.depth(free) > 0.5 * radius
    height, lateral = chest.height_fraction(finding.side), chest.lateral(finding.side)
    lobes = [finding.region] + [lobe for lobe in LOBE_BANDS if lobe != finding.region]
    for lobe in lobes:
        if lobe == "middle" and finding.side == "left":
            continue
        lo, hi = LOBE_BANDS[lobe]
        zone = (height > lo) & (height < hi)
        zone &= lateral < 0.2 if lobe == "middle" else lateral > -0.5
        centre = pick_point(rng, room & zone)
        if centre is not None:
            break
    else:
        return None
    u0, v0 = float(chest.u[centre]), float(chest.v[centre])
    wobble = smooth_noise(rng, density.shape, chest.size / 32)
    shape = ellipse(chest.u, chest.v, u0, v0, radius, radius * rng.uniform(0.8, 1.3), rng.uniform(0, np.pi))
    blob = shape + 0.5 * wobble  # < 1 inside
    region = (blob < 1) & free
    # Ill-defined margin: density ramps up inside the blob, so nothing outside the mask changes.
    margin = np.clip((1.0 - blob[region]) / 0.4, 0.2, 1.0)
    density[region] += (
        CONSOLIDATION_DENSITY[finding.severity] * margin * (0.8 + 0.2 * np.tanh(wobble[region]))
    )
    return region, replace(finding, region=lobe)


def _draw_nodule(
    chest: _Chest, density: np.ndarray, finding: Finding, taken: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, Finding] | None:
    radius = finding.size_cm * 10.0 / chest.a.fov_mm
    height = chest.height_fraction(finding.side)
    room = chest.depth(_free_lung(chest, finding.side, taken)) > radius + 0.02
    for zone in [finding.region] + [z for z in ZONE_BANDS if z != finding.region]:
        lo, hi = ZONE_BANDS[zone]
        centre = pick_point(rng, room & (height > lo) & (height < hi))
        if centre is not None:
            region = (
                ellipse(chest.u, chest.v, float(chest.u[centre]), float(chest.v[centre]), radius, radius) < 1
            )
            density[region] += NODULE_DENSITY
            return region, replace(finding, region=zone)
    return None


def render_cxr(
    anatomy: CxrAnatomy, pose: CxrPose, findings: tuple[Finding, ...], size: int, seed: np.random.SeedSequence
) -> CxrRender:
    """Render one radiograph with its findings.

    Args:
        anatomy: the patient's chest.
        pose: view, position and exposure of this study.
        findings: the findings to plant (from :func:`medvl.data.phantom.findings.sample_cxr_findings`).
        size: output side in pixels.
        seed: seeds the lung texture, lesion placement and noise as three independent streams, so the same
            seed without findings gives the same image apart from the findings.

    Returns:
        The image, its bit-coded mask (:data:`medvl.data.phantom.labels.MASK_BITS`) and the findings drawn.
    """
    texture_rng, place_rng, noise_rng = (np.random.default_rng(s) for s in seed.spawn(3))
    by_name = {f.name: f for f in findings}
    cardiomegaly = by_name.get("Cardiomegaly")
    ctr = (
        anatomy.heart_ctr
        if cardiomegaly is None
        else place_rng.uniform(*CTR_BY_SEVERITY[cardiomegaly.severity])
    )
    chest = _Chest(anatomy, pose, ctr, size)
    density = np.where(chest.body, _SOFT, 0.0).astype(np.float32)
    density[chest.abdomen] = _ABDOMEN
    density[chest.heart | chest.mediastinum] = _MEDIASTINUM
    density[chest.mediastinum & (np.abs(chest.u) < 0.03) & (chest.v < anatomy.lung_center - 0.15)] -= 0.12
    density[ellipse(chest.u, chest.v, 0.45, chest.base["left"] + 0.1, 0.1, 0.06) < 1] = 0.15
    lungs = chest.lung["right"] | chest.lung["left"]
    density[lungs] = _LUNG + _markings(chest, texture_rng)[lungs]

    mask = np.zeros((size, size), dtype=np.uint8)
    drawn: list[Finding] = []
    if cardiomegaly is not None:
        mask[chest.heart] |= MASK_BITS["Cardiomegaly"]
        drawn.append(cardiomegaly)
    for name in ("Pleural Effusion", "Pneumothorax", "Consolidation", "Lung Lesion"):
        finding = by_name.get(name)
        if finding is None:
            continue
        taken = mask > 0
        if name == "Pleural Effusion":
            region = _draw_effusion(chest, density, finding, place_rng)
        elif name == "Pneumothorax":
            region = _draw_pneumothorax(chest, density, finding)
        else:
            draw = _draw_consolidation if name == "Consolidation" else _draw_nodule
            placed = draw(chest, density, finding, taken, place_rng)
            if placed is None:
                continue
            region, finding = placed
        if region.any():
            mask[region] |= MASK_BITS[name]
            drawn.append(finding)

    density += chest.bones()
    image = _expose(density, pose, size, noise_rng)
    return CxrRender(image=image, mask=mask, findings=tuple(drawn))


def _expose(density: np.ndarray, pose: CxrPose, size: int, rng: np.random.Generator) -> np.ndarray:
    """Blur, window, gamma and noise: densities to brightness in ``[0, 1]``."""
    blurred = ndimage.gaussian_filter(density, 0.6 * size / 256)
    image = np.clip(pose.contrast * (blurred - 0.4) + 0.5 + pose.brightness, 0.0, 1.0) ** pose.gamma
    image += rng.standard_normal(image.shape, dtype=np.float32) * pose.noise
    return np.clip(image, 0.0, 1.0).astype(np.float32)
