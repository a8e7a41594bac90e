"""Phantom renderers: findings change exactly the pixels their masks cover, in the expected direction."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medvl.data.phantom import LABELS_2D, LABELS_3D, MASK_BITS, decode_mask, ground_truth
from medvl.data.phantom.ct import HU, render_ct, sample_ct_anatomy, sample_ct_geometry
from medvl.data.phantom.cxr import render_cxr, sample_cxr_anatomy, sample_cxr_pose
from medvl.data.phantom.findings import Finding, sample_ct_findings, sample_cxr_findings

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
    masks = decode_mask(render.mask)
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
        masks, diff = decode_mask(render.mask), render.image - normal.image
        assert masks["Lung Lesion"].sum() >= 9
        assert diff[masks["Lung Lesion"]].mean() > 3 * pose.noise
        assert -diff[masks["Pneumothorax"]].mean() > 3 * pose.noise


def test_cxr_masks_never_exceed_lungs_or_image():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        findings = sample_cxr_findings(rng)
        render, normal, _ = _cxr_pair(findings, seed)
        names = {f.name for f in render.findings}
        masks = decode_mask(render.mask)
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
]


@pytest.mark.parametrize(("finding", "value", "sign"), CT_CASES)
def test_ct_finding_changes_exactly_its_mask(finding, value, sign):
    rng = np.random.default_rng(7)
    anatomy, geometry = sample_ct_anatomy(rng), sample_ct_geometry(rng, 96, 32)
    render = render_ct(anatomy, geometry, (finding,), np.random.SeedSequence(7))
    normal = render_ct(anatomy, geometry, (), np.random.SeedSequence(7))
    assert render.findings[0].name == finding.name
    mask = decode_mask(render.mask)[finding.name]
    diff = render.hu.astype(np.int32) - normal.hu
    np.testing.assert_array_equal(diff != 0, mask)
    assert sign * diff[mask].mean() > 15
    assert abs(np.median(render.hu[mask]) - value) < 3 * geometry.noise_hu


def test_ct_tissues_have_their_hounsfield_units():
    rng = np.random.default_rng(11)
    anatomy, geometry = sample_ct_anatomy(rng), sample_ct_geometry(rng, 96, 40)
    render = render_ct(anatomy, geometry, (), np.random.SeedSequence(11))
    hu = render.hu
    assert hu.dtype == np.int16 and hu.shape == (40, 96, 96)
    assert not render.mask.any()
    assert abs(np.median(hu[:, :3, :3]) - HU["air"]) < 30  # outside the body
    top = hu[-3:]  # above the diaphragm: the lungs are the darkest large region inside the body
    assert ((top > -950) & (top < -500)).mean() > 0.08
    bottom = hu[:3]  # below the right dome: liver at ~60 HU
    assert np.abs(bottom - HU["liver"]).__lt__(3 * geometry.noise_hu).mean() > 0.1
    assert (hu >= 500).any()  # bone


def test_ct_geometry_respects_the_slice_and_scan_constraints():
    for seed in range(30):
        rng = np.random.default_rng(seed)
        depth = int(rng.integers(16, 60))
        geometry = sample_ct_geometry(rng, 64, depth)
        dz, dy, dx = geometry.spacing
        assert 2.5 <= dz <= 5.0 and dy == dx and 320 / 64 <= dx <= 440 / 64 + 1e-6
        assert depth * dz >= min(120.0, depth * 5.0) - 1e-6
        ras = geometry.affine_ras
        np.testing.assert_allclose(np.abs(np.diag(ras))[:3], [dx, dy, dz])


def test_ct_findings_sampler_only_plants_ct_observations():
    seen = set()
    for seed in range(200):
        findings = sample_ct_findings(np.random.default_rng(seed))
        names = [f.name for f in findings]
        assert len(names) == len(set(names)) <= 2
        seen.update(names)
        ground_truth(names, LABELS_3D)
    assert seen == {"Lung Lesion", "Pleural Effusion", "Liver Lesion"}


def test_ground_truth_follows_the_hierarchy():
    truth = ground_truth(["Consolidation"], LABELS_2D)
    assert truth["Consolidation"] == truth["Lung Opacity"] == 1 and truth["No Finding"] == 0
    assert ground_truth(["Cardiomegaly"], LABELS_2D)["Enlarged Cardiomediastinum"] == 1
    normal = ground_truth([], LABELS_3D)
    assert normal["No Finding"] == 1 and sum(normal.values()) == 1 and "Liver Lesion" in normal
    with pytest.raises(ValueError, match="Liver Lesion"):
        ground_truth(["Liver Lesion"], LABELS_2D)


def test_decode_mask_splits_overlapping_bits():
    mask = np.array([[0, MASK_BITS["Pleural Effusion"] | MASK_BITS["Consolidation"]]], dtype=np.uint8)
    masks = decode_mask(mask)
    assert masks["Pleural Effusion"][0, 1] and masks["Consolidation"][0, 1] and not masks["Lung Lesion"].any()
    with pytest.raises(ValueError, match="integer"):
        decode_mask(mask.astype(np.float32))
