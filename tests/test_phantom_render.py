"""Phantom renderers: findings change exactly the pixels their masks cover, in the expected direction."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medvl.data.phantom import LABELS_2D, LABELS_3D, MASK_BITS_2D, MASK_BITS_3D, decode_mask, ground_truth
from medvl.data.phantom.ct import (
    FOV_MM,
    HU,
    SCAN_LENGTH_MM,
    SLICE_THICKNESSES_MM,
    render_ct,
    sample_ct_anatomy,
    sample_ct_geometry,
)
from medvl.data.phantom.cxr import render_cxr, sample_cxr_anatomy, sample_cxr_pose
from medvl.data.phantom.findings import CT_FINDINGS, Finding, sample_ct_findings, sample_cxr_findings

BRIGHTER, DARKER = 1, -1
CXR_CASES = [
    ((Finding("Cardiomegaly", severity="mild"),), {"Cardiomegaly": BRIGHTER}),
    ((Finding("Pleural Effusion", side="left", severity="mild"),), {"Pleural Effusion": BRIGHTER}),
    ((Finding("Pleural Effusion", side="bilateral", severity="severe"),), {"Pleural Effusion": BRIGHTER}),
    ((Finding("Consolidation", side="right", severity="mild", region="lower"),), {"Consolidation": BRIGHTER}),
    (
        (Finding("Consolidation", side="right", severity="severe", region="middle"),),
        {"Consolidation": BRIGHTER},
    ),
    (
        (Finding("Lung Lesion", side="left", severity="mild", region="upper", size_cm=1.4),),
        {"Lung Lesion": BRIGHTER},
    ),
    ((Finding("Pneumothorax", side="right", severity="mild"),), {"Pneumothorax": DARKER}),
    (
        (
            Finding("Cardiomegaly", severity="severe"),
            Finding("Pleural Effusion", side="right", severity="moderate"),
            Finding("Pneumothorax", side="left", severity="moderate"),
            Finding("Consolidation", side="left", severity="moderate", region="upper"),
            Finding("Lung Lesion", side="right", severity="moderate", region="upper", size_cm=2.2),
        ),
        {
            "Cardiomegaly": BRIGHTER,
            "Pleural Effusion": BRIGHTER,
            "Pneumothorax": DARKER,
            "Consolidation": BRIGHTER,
            "Lung Lesion": BRIGHTER,
        },
    ),
]


def _cxr_pair(findings, seed: int, size: int = 256, view: str = "PA"):
    rng = np.random.default_rng(seed)
    anatomy, pose = sample_cxr_anatomy(rng), sample_cxr_pose(rng, view)
    with_findings = render_cxr(anatomy, pose, findings, size, np.random.SeedSequence(seed))
    without = render_cxr(anatomy, pose, (), size, np.random.SeedSequence(seed))
    return with_findings, without, pose


@pytest.mark.parametrize(("findings", "direction"), CXR_CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_cxr_finding_changes_exactly_its_mask(findings, direction, seed):
    render, normal, pose = _cxr_pair(findings, seed, view="AP" if seed else "PA")
    assert {f.name for f in render.findings} == set(direction)
    masks = decode_mask(render.mask, "2d")
    diff = render.image - normal.image
    union = render.mask > 0
    # Outside the masks (beyond the 0.6 px blur) the pixels are identical; noise and anatomy are shared.
    assert np.abs(diff[~ndimage.binary_dilation(union, np.ones((3, 3)), iterations=3)]).max() < 1e-6
    for name, sign in direction.items():
        mask = masks[name]
        assert mask.sum() > 10, name
        core = ndimage.binary_erosion(mask, iterations=2) if name != "Pneumothorax" else mask
        changed = np.abs(diff[core]) > 1e-3
        if name == "Cardiomegaly":  # the enlarged heart covers the normal one: only its rim changes
            assert sign * diff[mask].mean() > 0.02
        else:
            assert changed.mean() > 0.9, f"{name}: only {changed.mean():.0%} of the mask changed"
            assert sign * diff[core].mean() > 0.05, f"{name}: mean change {diff[core].mean():+.3f}"
        assert sign * diff[core].mean() > 2 * pose.noise, f"{name} drowns in noise"


def test_normal_cxr_has_empty_mask_and_shows_lungs():
    render, _, _ = _cxr_pair((), 3)
    assert render.findings == () and not render.mask.any()
    assert render.image.dtype == np.float32 and render.image.shape == (256, 256)
    assert 0.0 <= render.image.min() and render.image.max() <= 1.0
    centre_row = render.image[128]
    assert centre_row[60:90].mean() < centre_row[120:136].mean()  # dark lung beside the bright mediastinum


def test_cxr_findings_stay_visible_at_128_px():
    for seed in range(6):
        findings = (
            Finding("Lung Lesion", side="right", severity="mild", region="mid", size_cm=1.4),
            Finding("Pneumothorax", side="left", severity="mild"),
        )
        render, normal, pose = _cxr_pair(findings, seed, size=128)
        masks, diff = decode_mask(render.mask, "2d"), render.image - normal.image
        assert masks["Lung Lesion"].sum() >= 9
        assert diff[masks["Lung Lesion"]].mean() > 3 * pose.noise
        assert -diff[masks["Pneumothorax"]].mean() > 3 * pose.noise


def test_cxr_masks_never_exceed_lungs_or_image():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        findings = sample_cxr_findings(rng)
        render, normal, _ = _cxr_pair(findings, seed)
        names = {f.name for f in render.findings}
        masks = decode_mask(render.mask, "2d")
        assert {n for n, m in masks.items() if m.any()} == names
        truth = ground_truth(names, LABELS_2D)
        assert truth["No Finding"] == int(not names)


CT_CASES = [
    (
        Finding("Lung Lesion", side="right", severity="mild", region="upper", size_cm=0.8),
        HU["nodule"],
        BRIGHTER,
    ),
    (
        Finding("Lung Lesion", side="left", severity="severe", region="lower", size_cm=2.4),
        HU["nodule"],
        BRIGHTER,
    ),
    (Finding("Pleural Effusion", side="bilateral", severity="moderate"), HU["fluid"], BRIGHTER),
    (Finding("Liver Lesion", severity="mild", region="left", size_cm=1.2), HU["liver_lesion"], DARKER),
    (Finding("Kidney Cyst", side="left", severity="mild", size_cm=1.5), HU["cyst"], DARKER),
    (Finding("Kidney Cyst", side="right", severity="severe", size_cm=4.8), HU["cyst"], DARKER),
    (Finding("Ascites", severity="mild"), HU["fluid"], BRIGHTER),
    (Finding("Ascites", severity="severe"), HU["fluid"], BRIGHTER),
    (
        Finding("Lymphadenopathy", side="right", severity="mild", region="hilar", size_cm=1.5),
        HU["node"],
        BRIGHTER,
    ),
    (
        Finding("Lymphadenopathy", side="left", severity="severe", region="paratracheal", size_cm=3.4),
        HU["node"],
        BRIGHTER,
    ),
]


@pytest.mark.parametrize(("finding", "value", "sign"), CT_CASES)
@pytest.mark.parametrize("depth", [32, 160])
def test_ct_finding_changes_exactly_its_mask(finding, value, sign, depth):
    rng = np.random.default_rng(7)
    anatomy = sample_ct_anatomy(rng)
    geometry = sample_ct_geometry(rng, 96, depth, 2 * anatomy.body_half_width)
    render = render_ct(anatomy, geometry, (finding,), np.random.SeedSequence(7))
    normal = render_ct(anatomy, geometry, (), np.random.SeedSequence(7))
    assert [f.name for f in render.findings] == [finding.name]
    placed = render.findings[0]
    assert (placed.size_cm, placed.severity) == (finding.size_cm, finding.severity)
    mask = decode_mask(render.mask, "3d")[finding.name]
    assert mask.any()
    diff = render.hu.astype(np.int32) - normal.hu
    np.testing.assert_array_equal(diff != 0, mask)
    assert sign * diff[mask].mean() > 15
    assert abs(np.median(render.hu[mask]) - value) < 3 * geometry.noise_hu
    if finding.size_cm:  # a sphere of the reported size, at most (clipped by the organs around it)
        sphere_voxels = np.pi / 6 * (10 * finding.size_cm) ** 3 / np.prod(geometry.spacing)
        assert mask.sum() < 1.3 * sphere_voxels + 12


def test_ct_tissues_have_their_hounsfield_units():
    rng = np.random.default_rng(11)
    anatomy = sample_ct_anatomy(rng)
    geometry = sample_ct_geometry(rng, 96, 80, 2 * anatomy.body_half_width)
    render = render_ct(anatomy, geometry, (), np.random.SeedSequence(11))
    hu, noise = render.hu, 3 * geometry.noise_hu
    assert hu.dtype == np.int16 and hu.shape == (80, 96, 96)
    assert not render.mask.any()
    assert abs(np.median(hu[:, :3, :3]) - HU["air"]) < 30  # outside the body
    top = hu[-3:]  # above the diaphragm: the lungs are the darkest large region inside the body
    assert ((top > -950) & (top < -500)).mean() > 0.08
    # Below the diaphragm the abdomen is not uniform: enhanced liver and kidneys, fat around bowel loops.
    abdomen = hu[: int(0.4 * len(hu))]
    for tissue, share in (("liver", 0.03), ("kidney", 0.003), ("fat", 0.1), ("soft", 0.05)):
        assert (np.abs(abdomen - HU[tissue]) < noise).mean() > share, tissue
    assert (hu >= 500).any()  # bone


@pytest.mark.parametrize("depth", [16, 24, 40, 48, 100, 200, 512])
def test_ct_geometry_uses_real_slice_thicknesses_and_scan_lengths(depth):
    lengths = set()
    for seed in range(12):
        rng = np.random.default_rng(seed)
        geometry = sample_ct_geometry(rng, 64, depth, body_width_mm=360.0)
        dz, dy, dx = geometry.spacing
        assert dz in SLICE_THICKNESSES_MM and dy == dx and 400 / 64 <= dx <= FOV_MM[1] / 64 + 1e-6
        lengths.add(depth * dz)
        ras = geometry.affine_ras
        np.testing.assert_allclose(np.abs(np.diag(ras))[:3], [dx, dy, dz])
    low, high = SCAN_LENGTH_MM
    if low <= depth * SLICE_THICKNESSES_MM[-1] and depth * SLICE_THICKNESSES_MM[0] <= high:
        assert all(low <= length <= high for length in lengths)
    else:  # too few or too many slices for the range: the closest thickness
        assert len(lengths) == 1
    if depth == 200:
        assert len(lengths) > 1


def test_ct_findings_sampler_plants_several_ct_observations_and_normals():
    seen, counts = set(), []
    for seed in range(400):
        findings = sample_ct_findings(np.random.default_rng(seed))
        names = [f.name for f in findings]
        assert len(names) == len(set(names)) <= 4
        seen.update(names)
        counts.append(len(names))
        ground_truth(names, LABELS_3D)
        for finding in findings:
            if finding.name == "Kidney Cyst":
                assert finding.side in ("right", "left") and 1.5 <= finding.size_cm <= 5.0
            if finding.name == "Lymphadenopathy":
                assert finding.side in ("right", "left") and finding.region in ("hilar", "paratracheal")
                assert 1.5 <= finding.size_cm <= 3.5
    assert seen == set(CT_FINDINGS)
    share = np.bincount(counts, minlength=5) / len(counts)
    assert 0.18 < share[0] < 0.32 and share[1] + share[2] > share[3] + share[4] > 0.1


def test_ground_truth_follows_the_hierarchy():
    truth = ground_truth(["Consolidation"], LABELS_2D)
    assert truth["Consolidation"] == truth["Lung Opacity"] == 1 and truth["No Finding"] == 0
    assert ground_truth(["Cardiomegaly"], LABELS_2D)["Enlarged Cardiomediastinum"] == 1
    normal = ground_truth([], LABELS_3D)
    assert normal["No Finding"] == 1 and sum(normal.values()) == 1 and "Liver Lesion" in normal
    with pytest.raises(ValueError, match="Liver Lesion"):
        ground_truth(["Liver Lesion"], LABELS_2D)


def test_decode_mask_splits_overlapping_bits():
    mask = np.array([[0, MASK_BITS_2D["Pleural Effusion"] | MASK_BITS_2D["Consolidation"]]], dtype=np.uint8)
    masks = decode_mask(mask, "2d")
    assert masks["Pleural Effusion"][0, 1] and masks["Consolidation"][0, 1] and not masks["Lung Lesion"].any()
    with pytest.raises(ValueError, match="integer"):
        decode_mask(mask.astype(np.float32), "2d")
    with pytest.raises(ValueError, match="kind"):
        decode_mask(mask, "4d")


def test_mask_bits_fit_uint8_and_are_unique_within_a_kind():
    for bits in (MASK_BITS_2D, MASK_BITS_3D):
        assert len(set(bits.values())) == len(bits) and set(bits.values()) <= {1, 2, 4, 8, 16, 32, 64, 128}
    assert set(MASK_BITS_3D) == set(CT_FINDINGS) and set(MASK_BITS_2D) <= set(LABELS_2D)
    shared = set(MASK_BITS_2D) & set(MASK_BITS_3D)
    assert shared and all(MASK_BITS_2D[name] == MASK_BITS_3D[name] for name in shared)
    # Bit 16 is a radiograph's pneumothorax and a CT's lymphadenopathy: decoding needs the kind.
    mask = np.array([16], dtype=np.uint8)
    assert decode_mask(mask, "2d")["Pneumothorax"][0] and "Lymphadenopathy" not in decode_mask(mask, "2d")
    assert decode_mask(mask, "3d")["Lymphadenopathy"][0] and "Pneumothorax" not in decode_mask(mask, "3d")
