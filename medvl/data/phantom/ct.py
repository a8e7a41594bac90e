"""3D CT-like phantoms of the lower chest and upper abdomen in Hounsfield units, with exact lesion masks.

Geometry is in millimetres in the DICOM patient frame (LPS: x to the patient's left, y to the back, z to the
head). The volume is indexed ``[slice, row, column]``: slice ``k`` lies at height ``z0 + k * dz``, row ``r`` at
``y0 + r * dy`` and column ``c`` at ``x0 + c * dx``, so a standard axial DICOM series (orientation
``[1, 0, 0, 0, 1, 0]``) describes it directly. Tissue values: air -1000, lung about -850 with vessels, fat
-100, soft tissue and muscle 40, liver 60, bone 700 (cancellous 250); findings: lung nodule 30, pleural fluid
10, hypodense liver lesion 20. Like the radiograph renderer, this one returns the findings it could place.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from medvl.data.phantom.findings import Finding
from medvl.data.phantom.labels import LIVER_LESION, MASK_BITS
from medvl.data.phantom.shapes import inner_distance, pick_point, smooth_noise

HU = {
    "air": -1000.0,
    "lung": -850.0,
    "fat": -100.0,
    "soft": 40.0,
    "liver": 60.0,
    "bone": 700.0,
    "marrow": 250.0,
    "nodule": 30.0,
    "fluid": 10.0,
    "liver_lesion": 20.0,
}
EFFUSION_DEPTH = {"mild": (0.12, 0.18), "moderate": (0.26, 0.34), "severe": (0.42, 0.52)}
HU_RANGE = (-1024, 3071)
MIN_SCAN_LENGTH_MM = 120.0


@dataclass(frozen=True)
class CtAnatomy:
    """A patient's trunk in millimetres (shared by all their scans)."""

    body_half_width: float
    body_half_depth: float
    fat_mm: float
    lung_offset: float
    lung_half_width: float
    lung_half_depth: float
    dome_height: float
    right_dome_raise: float
    liver_half_width: float


@dataclass(frozen=True)
class CtGeometry:
    """Acquisition grid of one scan: matrix, voxel size, position of the first voxel (LPS mm)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    dome_level: float
    noise_hu: float

    @property
    def affine_lps(self) -> np.ndarray:
        """4x4 matrix from ``(column, row, slice)`` indices to LPS millimetres."""
        dz, dy, dx = self.spacing
        affine = np.diag([dx, dy, dz, 1.0])
        affine[:3, 3] = self.origin
        return affine

    @property
    def affine_ras(self) -> np.ndarray:
        """4x4 matrix from ``(column, row, slice)`` indices to RAS millimetres (the NIfTI affine)."""
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.affine_lps


@dataclass
class CtRender:
    """A rendered scan: HU as int16 ``[slice, row, column]``, the bit-coded mask, the findings placed."""

    hu: np.ndarray
    mask: np.ndarray
    findings: tuple[Finding, ...]


def sample_ct_anatomy(rng: np.random.Generator) -> CtAnatomy:
    """A random normal trunk."""
    u = rng.uniform
    half_width = u(150.0, 185.0)
    return CtAnatomy(
        body_half_width=half_width,
        body_half_depth=u(105.0, 130.0),
        fat_mm=u(8.0, 22.0),
        lung_offset=0.42 * half_width,
        lung_half_width=u(0.30, 0.35) * half_width,
        lung_half_depth=u(72.0, 85.0),
        dome_height=u(25.0, 40.0),
        right_dome_raise=u(8.0, 20.0),
        liver_half_width=u(0.55, 0.65) * half_width,
    )


def sample_ct_geometry(rng: np.random.Generator, matrix: int, depth: int) -> CtGeometry:
    """A random scan grid: field of view 320-440 mm, slices 2.5-5 mm thick covering at least 12 cm if possible."""
    pixel = round(float(rng.uniform(320.0, 440.0)) / matrix, 5)
    thickness = round(float(rng.uniform(max(2.5, min(5.0, MIN_SCAN_LENGTH_MM / depth)), 5.0)), 2)
    x0 = -pixel * (matrix - 1) / 2 + rng.uniform(-15.0, 15.0)
    y0 = -pixel * (matrix - 1) / 2 + rng.uniform(-15.0, 15.0)
    return CtGeometry(
        shape=(depth, matrix, matrix),
        spacing=(thickness, pixel, pixel),
        origin=(round(x0, 3), round(y0, 3), round(float(rng.uniform(-250.0, 50.0)), 1)),
        dome_level=float(rng.uniform(0.38, 0.5)),
        noise_hu=float(rng.uniform(6.0, 15.0)),
    )


class _Trunk:
    """Organ regions of one scan on its voxel grid."""

    def __init__(self, anatomy: CtAnatomy, geometry: CtGeometry) -> None:
        a, g = anatomy, geometry
        nz, ny, nx = g.shape
        dz, dy, dx = g.spacing
        self.spacing = g.spacing
        self.x = (g.origin[0] + dx * np.arange(nx, dtype=np.float32))[None, None, :]
        self.y = (g.origin[1] + dy * np.arange(ny, dtype=np.float32))[None, :, None]
        self.z = (dz * np.arange(nz, dtype=np.float32))[:, None, None]
        length = dz * nz
        self.dome = g.dome_level * length
        self.top = length
        x, y, z = self.x, self.y, self.z
        outer = (x / a.body_half_width) ** 2 + (y / a.body_half_depth) ** 2
        inner = (x / (a.body_half_width - a.fat_mm)) ** 2 + (y / (a.body_half_depth - a.fat_mm)) ** 2
        self.body, self.muscle = np.broadcast_to(outer < 1, g.shape), np.broadcast_to(inner < 1, g.shape)
        self.center = {
            "right": (-a.lung_offset, -0.05 * a.body_half_depth),
            "left": (a.lung_offset, -0.05 * a.body_half_depth),
        }
        self.a = a
        heart = ((x - 0.12 * a.body_half_width) / 60.0) ** 2 + ((y + 0.3 * a.body_half_depth) / 48.0) ** 2
        heart = heart + ((z - self.dome - min(45.0, 0.3 * length)) / min(55.0, 0.35 * length)) ** 2
        self.heart = heart < 1
        self.lung = {side: self._lung(side) & ~self.heart for side in ("right", "left")}
        liver = ((x + 0.3 * a.body_half_width) / a.liver_half_width) ** 2 + (
            (y + 0.05 * a.body_half_depth) / (0.72 * a.body_half_depth)
        ) ** 2
        self.liver = (
            (liver < 1) & (z < self._dome("right")) & self.muscle & ~self.lung["right"] & ~self.lung["left"]
        )
        spine_y = 0.5 * a.body_half_depth
        spine = (x / 18.0) ** 2 + ((y - spine_y) / 16.0) ** 2
        self.vertebra, self.marrow = (
            np.broadcast_to(spine < 1, g.shape),
            np.broadcast_to(spine < 0.7, g.shape),
        )
        self.canal = np.broadcast_to((x / 8.0) ** 2 + ((y - spine_y - 24.0) / 8.0) ** 2 < 1, g.shape)
        self.aorta = np.broadcast_to(
            ((x - 22.0) / 12.0) ** 2 + ((y - spine_y + 22.0) / 12.0) ** 2 < 1, g.shape
        )
        self.ribs = self._ribs()

    def _in_plane(self, side: str) -> np.ndarray:
        cx, cy = self.center[side]
        return ((self.x - cx) / self.a.lung_half_width) ** 2 + ((self.y - cy) / self.a.lung_half_depth) ** 2

    def _dome(self, side: str) -> np.ndarray:
        raise_mm = self.a.right_dome_raise if side == "right" else 0.0
        return (
            self.dome + raise_mm + self.a.dome_height * np.sqrt(1.0 - np.clip(self._in_plane(side), 0.0, 1.0))
        )

    def _lung(self, side: str) -> np.ndarray:
        return (self._in_plane(side) < 1) & (self.z > self._dome(side))

    def _ribs(self) -> np.ndarray:
        """Oblique ribs: short arcs in the body wall whose height varies with the angle around the body."""
        a = self.a
        ring = (self.x / (a.body_half_width - a.fat_mm - 8.0)) ** 2 + (
            self.y / (a.body_half_depth - a.fat_mm - 8.0)
        ) ** 2
        angle = np.arctan2(self.y, np.abs(self.x))
        phase = np.cos(2 * np.pi * (self.z - 12.0 * angle) / 30.0)
        return (np.abs(ring - 1.0) < 0.06) & (phase > 0.75) & (self.z > self.dome - 20.0)

    def height_fraction(self) -> np.ndarray:
        """Height in the lung: 0 at the dome, 1 at the top of the scan."""
        return (self.z - self.dome) / (self.top - self.dome)

    def room(self, region: np.ndarray) -> np.ndarray:
        """Distance of each voxel to the region's edge in mm."""
        return inner_distance(region, self.spacing)


def _fill(trunk: _Trunk, rng: np.random.Generator) -> np.ndarray:
    hu = np.full(trunk.body.shape, HU["air"], dtype=np.float32)
    hu[trunk.body] = HU["fat"]
    hu[trunk.muscle] = HU["soft"]
    hu[trunk.liver] = HU["liver"]
    vessels = np.exp(-((smooth_noise(rng, hu.shape, (0.6, 1.2, 1.2)) / 0.3) ** 2))
    lungs = trunk.lung["right"] | trunk.lung["left"]
    hu[lungs] = HU["lung"] + 250.0 * vessels[lungs]
    hu[trunk.heart] = HU["soft"]
    hu[trunk.aorta & trunk.muscle] = HU["soft"]
    hu[trunk.ribs & trunk.muscle & ~lungs] = HU["bone"]
    hu[trunk.vertebra] = HU["bone"]
    hu[trunk.marrow] = HU["marrow"]
    hu[trunk.canal] = HU["fluid"]
    return hu


def _lobe_zone(trunk: _Trunk, side: str, lobe: str) -> np.ndarray:
    height = trunk.height_fraction()
    anterior = trunk.y < trunk.center[side][1]
    if lobe == "upper":
        return (height > 0.5) | (anterior & (height > 0.3)) if side == "left" else height > 0.55
    if lobe == "middle":
        return anterior & (height < 0.6)
    return (height < 0.5) & ~anterior if side == "left" else (height < 0.55) & ~anterior


def _effusion(trunk: _Trunk, finding: Finding, rng: np.random.Generator) -> np.ndarray:
    lo, hi = EFFUSION_DEPTH[finding.severity]
    fraction = rng.uniform(lo, hi)
    region = np.zeros(trunk.body.shape, dtype=bool)
    for side in ("right", "left") if finding.side == "bilateral" else (finding.side,):
        cx, cy = trunk.center[side]
        level = (
            cy
            + trunk.a.lung_half_depth * (1.0 - 2.0 * fraction)
            + 15.0 * fraction * ((trunk.x - cx) / trunk.a.lung_half_width) ** 2
        )
        region |= trunk.lung[side] & (trunk.y > level)
    return region


def _sphere(trunk: _Trunk, centre: tuple[int, ...], radius: float) -> np.ndarray:
    k, r, c = centre
    cz, cy, cx = float(trunk.z[k, 0, 0]), float(trunk.y[0, r, 0]), float(trunk.x[0, 0, c])
    return (trunk.x - cx) ** 2 + (trunk.y - cy) ** 2 + (trunk.z - cz) ** 2 < radius**2


def _nodule(
    trunk: _Trunk, finding: Finding, taken: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, Finding] | None:
    radius = finding.size_cm * 5.0
    room = trunk.room(trunk.lung[finding.side] & ~taken) > radius + 3.0
    lobes = ("upper", "middle", "lower") if finding.side == "right" else ("upper", "lower")
    for lobe in [finding.region] + [lobe for lobe in lobes if lobe != finding.region]:
        centre = pick_point(rng, room & _lobe_zone(trunk, finding.side, lobe))
        if centre is not None:
            return _sphere(trunk, centre, radius), replace(finding, region=lobe)
    return None


def _liver_lesion(
    trunk: _Trunk, finding: Finding, rng: np.random.Generator
) -> tuple[np.ndarray, Finding] | None:
    radius = finding.size_cm * 5.0
    room = trunk.room(trunk.liver) > radius + 4.0
    split = -0.15 * trunk.a.body_half_width
    for lobe in (finding.region, "left" if finding.region == "right" else "right"):
        centre = pick_point(rng, room & ((trunk.x > split) if lobe == "left" else (trunk.x <= split)))
        if centre is not None:
            return _sphere(trunk, centre, radius), replace(finding, region=lobe)
    return None


def render_ct(
    anatomy: CtAnatomy, geometry: CtGeometry, findings: tuple[Finding, ...], seed: np.random.SeedSequence
) -> CtRender:
    """Render one CT scan with its findings.

    Args:
        anatomy: the patient's trunk.
        geometry: the scan grid (from :func:`sample_ct_geometry`).
        findings: the findings to plant (from :func:`medvl.data.phantom.findings.sample_ct_findings`).
        seed: seeds lung texture, lesion placement and noise as three independent streams.

    Returns:
        HU volume (int16), bit-coded mask (:data:`medvl.data.phantom.labels.MASK_BITS`) and the findings placed.
    """
    texture_rng, place_rng, noise_rng = (np.random.default_rng(s) for s in seed.spawn(3))
    trunk = _Trunk(anatomy, geometry)
    hu = _fill(trunk, texture_rng)
    mask = np.zeros(hu.shape, dtype=np.uint8)
    drawn: list[Finding] = []
    by_name = {f.name: f for f in findings}
    for name in ("Pleural Effusion", "Lung Lesion", LIVER_LESION):
        finding = by_name.get(name)
        if finding is None:
            continue
        if name == "Pleural Effusion":
            region, value = _effusion(trunk, finding, place_rng), HU["fluid"]
        else:
            placed = (
                _nodule(trunk, finding, mask > 0, place_rng)
                if name == "Lung Lesion"
                else _liver_lesion(trunk, finding, place_rng)
            )
            if placed is None:
                continue
            (region, finding), value = placed, HU["nodule" if name == "Lung Lesion" else "liver_lesion"]
        if region.any():
            hu[region] = value
            mask[region] |= MASK_BITS[name]
            drawn.append(finding)
    hu += noise_rng.standard_normal(hu.shape, dtype=np.float32) * geometry.noise_hu
    return CtRender(hu=np.clip(np.rint(hu), *HU_RANGE).astype(np.int16), mask=mask, findings=tuple(drawn))
