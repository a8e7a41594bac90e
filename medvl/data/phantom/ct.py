"""3D CT-like phantoms of the chest and abdomen in Hounsfield units, with exact lesion masks.

Geometry is in millimetres in the DICOM patient frame (LPS: x to the patient's left, y to the back, z to the
head). The volume is indexed ``[slice, row, column]``: slice ``k`` lies at height ``z0 + k * dz``, row ``r`` at
``y0 + r * dy`` and column ``c`` at ``x0 + c * dx``, so a standard axial DICOM series (orientation
``[1, 0, 0, 0, 1, 0]``) describes it directly. The scan looks like a portal-venous phase: air -1000, lung
about -850 with vessels, fat -100 (subcutaneous, mediastinal, perirenal and the abdominal fat around soft-tissue
bowel loops), muscle and other soft tissue 40, enhanced liver 100, enhanced kidneys and aorta 150, bone 700
(cancellous 250). Findings: lung nodule 30, pleural fluid and ascites 10, hypodense liver lesion 25, kidney cyst
5 (water), enlarged lymph node 40 (bulging from the mediastinum into the lung, so that it shows against lung
and mediastinal fat). Like the radiograph renderer, this one returns the findings it could place: a finding
that finds no room in the scanned range (a kidney cyst in a scan that stops above the kidneys) is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from medvl.data.phantom.findings import Finding
from medvl.data.phantom.labels import ASCITES, KIDNEY_CYST, LIVER_LESION, LYMPHADENOPATHY, MASK_BITS_3D
from medvl.data.phantom.shapes import inner_distance, pick_point, smooth_noise

HU = {
    "air": -1000.0,
    "lung": -850.0,
    "fat": -100.0,
    "soft": 40.0,
    "liver": 100.0,
    "kidney": 150.0,
    "vessel": 150.0,
    "bone": 700.0,
    "marrow": 250.0,
    "nodule": 30.0,
    "fluid": 10.0,
    "liver_lesion": 25.0,
    "cyst": 5.0,
    "node": 40.0,
}
# The tissue (key of HU) of each finding, in painting order.
FINDING_TISSUE = {
    "Pleural Effusion": "fluid",
    "Lung Lesion": "nodule",
    LYMPHADENOPATHY: "node",
    ASCITES: "fluid",
    LIVER_LESION: "liver_lesion",
    KIDNEY_CYST: "cyst",
}
EFFUSION_DEPTH = {"mild": (0.12, 0.18), "moderate": (0.26, 0.34), "severe": (0.42, 0.52)}
ASCITES_MM = {"mild": (6.0, 10.0), "moderate": (12.0, 18.0), "severe": (22.0, 32.0)}
HU_RANGE = (-1024, 3071)
SLICE_THICKNESSES_MM = (0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0)
SCAN_LENGTH_MM = (120.0, 420.0)
FOV_MM = (300.0, 500.0)
_CENTRING_MM = 15.0
_BOWEL_WALL_GAP_MM = 12.0


@dataclass(frozen=True)
class CtAnatomy:
    """A patient's trunk in millimetres (shared by all their scans)."""

    body_half_width: float
    body_half_depth: float
    fat_mm: float
    wall_mm: float
    lung_offset: float
    lung_half_width: float
    lung_half_depth: float
    dome_height: float
    right_dome_raise: float
    liver_half_width: float
    liver_height: float
    kidney_offset: float
    kidney_half_axes: tuple[float, float, float]
    kidney_top: float
    right_kidney_lower: float


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
        wall_mm=u(8.0, 14.0),
        lung_offset=0.42 * half_width,
        lung_half_width=u(0.30, 0.35) * half_width,
        lung_half_depth=u(72.0, 85.0),
        dome_height=u(25.0, 40.0),
        right_dome_raise=u(8.0, 20.0),
        liver_half_width=u(0.55, 0.65) * half_width,
        liver_height=u(110.0, 150.0),
        kidney_offset=u(58.0, 70.0),
        kidney_half_axes=(u(25.0, 30.0), u(20.0, 24.0), u(50.0, 60.0)),
        kidney_top=u(10.0, 30.0),
        right_kidney_lower=u(10.0, 20.0),
    )


def slice_thickness_choices(depth: int) -> tuple[float, ...]:
    """The slice thicknesses of :data:`SLICE_THICKNESSES_MM` whose scan of ``depth`` slices covers a length
    within :data:`SCAN_LENGTH_MM`, or the one coming closest when none does."""
    low, high = SCAN_LENGTH_MM
    fitting = tuple(t for t in SLICE_THICKNESSES_MM if low <= t * depth <= high)
    return fitting or (min(SLICE_THICKNESSES_MM, key=lambda t: max(low - t * depth, t * depth - high)),)


def sample_ct_geometry(
    rng: np.random.Generator, matrix: int, depth: int, body_width_mm: float = 0.0
) -> CtGeometry:
    """A random scan grid: field of view 300-500 mm (widened to hold a body ``body_width_mm`` wide), a
    realistic slice thickness (0.625-5 mm) for a scan length of 120-420 mm where ``depth`` allows it."""
    fov = max(float(rng.uniform(*FOV_MM)), body_width_mm + 2 * _CENTRING_MM + 10.0)
    pixel = round(fov / matrix, 5)
    choices = slice_thickness_choices(depth)
    thickness = choices[int(rng.integers(len(choices)))]
    x0 = -pixel * (matrix - 1) / 2 + rng.uniform(-_CENTRING_MM, _CENTRING_MM)
    y0 = -pixel * (matrix - 1) / 2 + rng.uniform(-_CENTRING_MM, _CENTRING_MM)
    return CtGeometry(
        shape=(depth, matrix, matrix),
        spacing=(thickness, pixel, pixel),
        origin=(round(x0, 3), round(y0, 3), round(float(rng.uniform(-250.0, 50.0)), 1)),
        dome_level=float(rng.uniform(0.42, 0.55)),
        noise_hu=float(rng.uniform(6.0, 15.0)),
    )


def _ellipse(u: np.ndarray, v: np.ndarray, half_u: float, half_v: float) -> np.ndarray:
    return (u / half_u) ** 2 + (v / half_v) ** 2 < 1


class _Trunk:
    """Organ regions of one scan on its voxel grid (boolean arrays that broadcast to the volume)."""

    def __init__(self, anatomy: CtAnatomy, geometry: CtGeometry, rng: np.random.Generator) -> None:
        a, g = anatomy, geometry
        nz, ny, nx = g.shape
        dz, dy, dx = g.spacing
        self.shape, self.spacing, self.a = g.shape, g.spacing, a
        self.x = (g.origin[0] + dx * np.arange(nx, dtype=np.float32))[None, None, :]
        self.y = (g.origin[1] + dy * np.arange(ny, dtype=np.float32))[None, :, None]
        self.z = (dz * np.arange(nz, dtype=np.float32))[:, None, None]
        length = dz * nz
        self.dome = g.dome_level * length
        self.top = length
        x, y, z = self.x, self.y, self.z
        inner = (a.body_half_width - a.fat_mm, a.body_half_depth - a.fat_mm)
        self.body = _ellipse(x, y, a.body_half_width, a.body_half_depth)
        self.inner = _ellipse(x, y, *inner)
        self.cavity = _ellipse(x, y, inner[0] - a.wall_mm, inner[1] - a.wall_mm)
        self.wall_distance = inner_distance(self.cavity[0], (dy, dx))[None]
        self.center = {
            "right": (-a.lung_offset, -0.05 * a.body_half_depth),
            "left": (a.lung_offset, -0.05 * a.body_half_depth),
        }
        heart = ((x - 0.12 * a.body_half_width) / 60.0) ** 2 + ((y + 0.3 * a.body_half_depth) / 48.0) ** 2
        heart = heart + ((z - self.dome - min(45.0, 0.3 * length)) / min(55.0, 0.35 * length)) ** 2
        self.heart = heart < 1
        self.lung = {side: self._lung(side) & ~self.heart for side in ("right", "left")}
        lungs = self.lung["right"] | self.lung["left"]
        spine_y = 0.5 * a.body_half_depth
        self.vertebra = _ellipse(x, y - spine_y, 18.0, 16.0)
        self.marrow = _ellipse(x, y - spine_y, 18.0 * 0.7**0.5, 16.0 * 0.7**0.5)
        self.canal = _ellipse(x, y - spine_y - 24.0, 8.0, 8.0)
        self.aorta = _ellipse(x - 22.0, y - spine_y + 22.0, 12.0, 12.0)
        self.ribs = self._ribs()
        outside = self.vertebra | self.canal | self.aorta | self.heart
        diaphragm = np.where(x < 0, self._dome("right"), self._dome("left"))
        self.abdomen = (z < diaphragm) & self.cavity & ~outside
        middle = self.cavity & (np.abs(x) < a.lung_offset) & (y < spine_y - 20.0)
        self.mediastinum = (z >= diaphragm) & middle & ~lungs & ~outside
        self.kidney = {side: self._kidney(side, 0.0) for side in ("right", "left")}
        self.kidneys = self.kidney["right"] | self.kidney["left"]
        self.sinus = self.kidneys & (self._kidney("right", -0.55) | self._kidney("left", -0.55))
        perirenal = (self._kidney("right", 10.0) | self._kidney("left", 10.0)) & ~self.kidneys
        self.liver = self.liver_shape(0.0) & ~self.kidneys & ~perirenal
        self.back = (
            self.abdomen & (y > spine_y - 10.0) & (np.abs(x) < a.kidney_offset) & ~perirenal & ~self.kidneys
        )
        self.peritoneal = self.abdomen & ~self.liver & ~self.kidneys & ~perirenal & ~self.back
        self.bowel = self._bowel(rng)

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

    def liver_shape(self, margin: float) -> np.ndarray:
        """The liver grown by ``margin`` mm, within the abdomen: under the right dome, narrowing downwards to
        its tip ``liver_height`` below the dome and drawing back to the right flank as it narrows."""
        a = self.a
        scale = 1.0 - np.clip((self.dome - self.z) / a.liver_height, 0.0, 1.0)
        cx = -0.3 * a.body_half_width - 0.3 * a.body_half_width * (1.0 - scale)
        half_x = np.maximum(a.liver_half_width * scale + margin, 1e-3)
        half_y = np.maximum(0.72 * a.body_half_depth * (0.4 + 0.6 * scale) + margin, 1e-3)
        inside = ((self.x - cx) / half_x) ** 2 + ((self.y + 0.05 * a.body_half_depth) / half_y) ** 2 < 1
        return inside & self.abdomen

    def _kidney(self, side: str, margin: float) -> np.ndarray:
        """One kidney (ellipsoid beside the spine) grown by ``margin`` mm; a negative margin in (-1, 0) gives
        its renal sinus, the medial part scaled by ``-margin``."""
        a = self.a
        sx = -1.0 if side == "right" else 1.0
        hx, hy, hz = a.kidney_half_axes
        top = self.dome - a.kidney_top - (a.right_kidney_lower if side == "right" else 0.0)
        cx, cy, cz = sx * a.kidney_offset, 0.5 * a.body_half_depth - 5.0, top - hz
        if margin < 0:
            scale = -margin
            cx -= sx * (1.0 - scale) * hx
            hx, hy, hz, margin = scale * hx, scale * hy, scale * hz, 0.0
        r = (
            ((self.x - cx) / (hx + margin)) ** 2
            + ((self.y - cy) / (hy + margin)) ** 2
            + ((self.z - cz) / (hz + margin)) ** 2
        )
        return (r < 1) & self.abdomen

    def _bowel(self, rng: np.random.Generator) -> np.ndarray:
        """Soft-tissue bowel loops: a thickened level set of smooth noise in the peritoneal fat, kept away from
        the abdominal wall and the liver so that fluid there meets fat."""
        loops = np.zeros(self.shape, dtype=bool)
        slices = np.flatnonzero(self.peritoneal.any(axis=(1, 2)))
        if slices.size == 0:
            return loops
        depth = int(slices[-1]) + 1
        field = smooth_noise(rng, (depth, *self.shape[1:]), tuple(8.0 / s for s in self.spacing))
        room = (
            self.peritoneal
            & (self.wall_distance > _BOWEL_WALL_GAP_MM)
            & ~self.liver_shape(_BOWEL_WALL_GAP_MM)
        )
        loops[:depth] = (np.abs(field) < 0.4) & room[:depth]
        return loops

    def height_fraction(self) -> np.ndarray:
        """Height in the lung: 0 at the dome, 1 at the top of the scan."""
        return (self.z - self.dome) / (self.top - self.dome)

    def room(self, region: np.ndarray) -> np.ndarray:
        """Distance of each voxel to the region's edge (or the scan's edge) in mm, 0 outside the region."""
        region = np.broadcast_to(region, self.shape)
        room = np.zeros(self.shape, dtype=np.float64)
        box = ndimage.find_objects(region.astype(np.uint8))
        if box:
            room[box[0]] = inner_distance(np.pad(region[box[0]], 1), self.spacing)[1:-1, 1:-1, 1:-1]
        return room


def _paint(hu: np.ndarray, region: np.ndarray, tissue: str) -> None:
    hu[np.broadcast_to(region, hu.shape)] = HU[tissue]


def _fill(trunk: _Trunk, rng: np.random.Generator) -> np.ndarray:
    hu = np.full(trunk.shape, HU["air"], dtype=np.float32)
    for region, tissue in (
        (trunk.body, "fat"),
        (trunk.inner, "soft"),
        (trunk.mediastinum, "fat"),
        (trunk.abdomen, "fat"),
        (trunk.bowel, "soft"),
        (trunk.back, "soft"),
        (trunk.liver, "liver"),
        (trunk.kidneys, "kidney"),
        (trunk.sinus, "fat"),
    ):
        _paint(hu, region, tissue)
    vessels = np.exp(-((smooth_noise(rng, hu.shape, (0.6, 1.2, 1.2)) / 0.3) ** 2))
    lungs = trunk.lung["right"] | trunk.lung["left"]
    hu[lungs] = HU["lung"] + 250.0 * vessels[lungs]
    for region, tissue in (
        (trunk.heart, "soft"),
        (trunk.aorta & trunk.inner, "vessel"),
        (trunk.ribs & trunk.inner & ~trunk.cavity, "bone"),
        (trunk.vertebra, "bone"),
        (trunk.marrow, "marrow"),
        (trunk.canal, "fluid"),
    ):
        _paint(hu, region, tissue)
    return hu


def _lobe_zone(trunk: _Trunk, side: str, lobe: str) -> np.ndarray:
    height = trunk.height_fraction()
    anterior = trunk.y < trunk.center[side][1]
    if lobe == "upper":
        return (height > 0.5) | (anterior & (height > 0.3)) if side == "left" else height > 0.55
    if lobe == "middle":
        return anterior & (height < 0.6)
    return (height < 0.5) & ~anterior if side == "left" else (height < 0.55) & ~anterior


def _other(side: str) -> str:
    return "left" if side == "right" else "right"


def _sphere(trunk: _Trunk, centre: tuple[int, ...], radius: float) -> np.ndarray:
    k, r, c = centre
    cz, cy, cx = float(trunk.z[k, 0, 0]), float(trunk.y[0, r, 0]), float(trunk.x[0, 0, c])
    return (trunk.x - cx) ** 2 + (trunk.y - cy) ** 2 + (trunk.z - cz) ** 2 < radius**2


# A placer returns the finding's region (before other findings are taken out) and the finding as placed (its
# lobe, station or side may move to where there was room), or None when it finds no room.
_Placed = tuple[np.ndarray, Finding] | None


def _effusion(trunk: _Trunk, finding: Finding, taken: np.ndarray, rng: np.random.Generator) -> _Placed:
    lo, hi = EFFUSION_DEPTH[finding.severity]
    fraction = rng.uniform(lo, hi)
    region = np.zeros(trunk.shape, dtype=bool)
    for side in ("right", "left") if finding.side == "bilateral" else (finding.side,):
        cx, cy = trunk.center[side]
        level = (
            cy
            + trunk.a.lung_half_depth * (1.0 - 2.0 * fraction)
            + 15.0 * fraction * ((trunk.x - cx) / trunk.a.lung_half_width) ** 2
        )
        region |= trunk.lung[side] & (trunk.y > level)
    return region, finding


def _nodule(trunk: _Trunk, finding: Finding, taken: np.ndarray, rng: np.random.Generator) -> _Placed:
    radius = finding.size_cm * 5.0
    room = trunk.room(trunk.lung[finding.side] & ~taken) > radius + 3.0
    lobes = ("upper", "middle", "lower") if finding.side == "right" else ("upper", "lower")
    for lobe in [finding.region] + [lobe for lobe in lobes if lobe != finding.region]:
        centre = pick_point(rng, room & _lobe_zone(trunk, finding.side, lobe))
        if centre is not None:
            return _sphere(trunk, centre, radius), replace(finding, region=lobe)
    return None


def _lymph_node(trunk: _Trunk, finding: Finding, taken: np.ndarray, rng: np.random.Generator) -> _Placed:
    """An enlarged node centred just inside the lung's medial edge: it fills mediastinal fat and bulges into
    the lung (hilar: the lower chest, paratracheal: higher up)."""
    radius = finding.size_cm * 5.0
    lung = trunk.lung[finding.side]
    room = trunk.room(lung)
    medial_sign = 1.0 if finding.side == "right" else -1.0
    medial = medial_sign * (trunk.x - trunk.center[finding.side][0]) > 0.4 * trunk.a.lung_half_width
    near_edge = lung & (room <= max(0.5 * radius, *trunk.spacing)) & medial & ~taken
    height = trunk.height_fraction()
    levels = {"hilar": (height > 0.1) & (height < 0.55), "paratracheal": height > 0.6}
    for station in (finding.region, *(s for s in levels if s != finding.region)):
        centre = pick_point(rng, near_edge & levels[station])
        if centre is not None:
            region = _sphere(trunk, centre, radius) & (lung | trunk.mediastinum)
            return region, replace(finding, region=station)
    return None


def _ascites(trunk: _Trunk, finding: Finding, taken: np.ndarray, rng: np.random.Generator) -> _Placed:
    """Free fluid replacing the peritoneal fat along the abdominal wall (flanks, paracolic gutters) and
    around the liver, in a layer as thick as the severity."""
    depth = rng.uniform(*ASCITES_MM[finding.severity])
    fat = trunk.peritoneal & ~trunk.bowel
    return fat & ((trunk.wall_distance < depth) | trunk.liver_shape(depth)), finding


def _liver_lesion(trunk: _Trunk, finding: Finding, taken: np.ndarray, rng: np.random.Generator) -> _Placed:
    radius = finding.size_cm * 5.0
    room = trunk.room(trunk.liver) > radius + 4.0
    split = -0.15 * trunk.a.body_half_width
    for lobe in (finding.region, _other(finding.region)):
        centre = pick_point(rng, room & ((trunk.x > split) if lobe == "left" else (trunk.x <= split)))
        if centre is not None:
            return _sphere(trunk, centre, radius), replace(finding, region=lobe)
    return None


def _kidney_cyst(trunk: _Trunk, finding: Finding, taken: np.ndarray, rng: np.random.Generator) -> _Placed:
    """A water-density sphere in a kidney: small cysts lie inside it, large ones bulge out of it."""
    radius = finding.size_cm * 5.0
    for side in (finding.side, _other(finding.side)):
        centre = pick_point(rng, trunk.room(trunk.kidney[side]) > min(radius, 15.0))
        if centre is not None:
            return _sphere(trunk, centre, radius) & trunk.abdomen, replace(finding, side=side)
    return None


_PLACERS: dict[str, Callable[[_Trunk, Finding, np.ndarray, np.random.Generator], _Placed]] = {
    "Pleural Effusion": _effusion,
    "Lung Lesion": _nodule,
    LYMPHADENOPATHY: _lymph_node,
    ASCITES: _ascites,
    LIVER_LESION: _liver_lesion,
    KIDNEY_CYST: _kidney_cyst,
}


def render_ct(
    anatomy: CtAnatomy, geometry: CtGeometry, findings: tuple[Finding, ...], seed: np.random.SeedSequence
) -> CtRender:
    """Render one CT scan with its findings.

    Args:
        anatomy: the patient's trunk.
        geometry: the scan grid (from :func:`sample_ct_geometry`).
        findings: the findings to plant (from :func:`medvl.data.phantom.findings.sample_ct_findings`).
        seed: seeds tissue texture (lung vessels, bowel loops), lesion placement and noise as three
            independent streams.

    Returns:
        HU volume (int16), bit-coded mask (:data:`medvl.data.phantom.labels.MASK_BITS_3D`) and the findings
        placed, in :data:`FINDING_TISSUE` order; each finding covers voxels no earlier one took.
    """
    texture_rng, place_rng, noise_rng = (np.random.default_rng(s) for s in seed.spawn(3))
    trunk = _Trunk(anatomy, geometry, texture_rng)
    hu = _fill(trunk, texture_rng)
    mask = np.zeros(hu.shape, dtype=np.uint8)
    drawn: list[Finding] = []
    by_name = {f.name: f for f in findings}
    for name, tissue in FINDING_TISSUE.items():
        if name not in by_name:
            continue
        placed = _PLACERS[name](trunk, by_name[name], mask > 0, place_rng)
        if placed is None:
            continue
        region, finding = placed
        region = region & (mask == 0)
        if region.any():
            hu[region] = HU[tissue]
            mask[region] |= MASK_BITS_3D[name]
            drawn.append(finding)
    hu += noise_rng.standard_normal(hu.shape, dtype=np.float32) * geometry.noise_hu
    return CtRender(hu=np.clip(np.rint(hu), *HU_RANGE).astype(np.int16), mask=mask, findings=tuple(drawn))


def key_images(render: CtRender) -> dict[str, int]:
    """The key image of each focal finding, as a report cites it: the 1-based number of the slice where the
    lesion is largest, counted from the head (slice ``k`` is image ``depth - k``)."""
    depth = render.mask.shape[0]
    keys = {}
    for finding in render.findings:
        if finding.size_cm:
            area = (render.mask & MASK_BITS_3D[finding.name]).astype(bool).sum(axis=(1, 2))
            keys[finding.name] = depth - int(area.argmax())
    return keys
