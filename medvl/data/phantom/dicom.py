"""Real DICOM files for phantom studies: DX/CR radiographs and CT series, uncompressed, RLE or JPEG 2000.

All UIDs are derived from the cohort seed and the study id (``pydicom.uid.generate_uid`` with entropy
sources), so the same cohort is written byte for byte the same. CT series follow the CT Image Storage IOD's
geometry: axial ``ImageOrientationPatient``, ``ImagePositionPatient`` advancing along the slice normal,
``PixelSpacing``, ``SliceThickness``, rescale to HU; file names are random and ``InstanceNumber`` runs head to
feet, feet to head or in shuffled order, so only the positions give the slice order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless, generate_uid

from medvl.data.phantom.ct import CtGeometry
from medvl.io.dicom_writer import new_dataset, save_dataset

TRANSFER_SYNTAXES: dict[str, UID] = {
    "explicit": ExplicitVRLittleEndian,
    "rle": RLELossless,
    "j2k": JPEG2000Lossless,
}
RADIOGRAPH_MAX = 4095
MANUFACTURER = "medvl phantom"


@dataclass(frozen=True)
class StudyInfo:
    """Patient and study attributes shared by every file of a study."""

    patient_id: str
    study_id: str
    sex: str
    age: int
    study_date: str
    uid_seed: str

    def uid(self, *parts: object) -> UID:
        """A deterministic UID for this study (``parts`` name the object: series, instance number...)."""
        return generate_uid(entropy_srcs=[MANUFACTURER, self.uid_seed, self.study_id, *map(str, parts)])


def _dataset(info: StudyInfo, sop_uid: UID, modality: str) -> Dataset:
    ds = new_dataset(modality, sop_uid)
    ds.Manufacturer = MANUFACTURER
    ds.PatientName = f"PHANTOM^{info.patient_id}"
    ds.PatientID = info.patient_id
    ds.PatientSex = info.sex
    ds.PatientAge = f"{info.age:03d}Y"
    ds.StudyInstanceUID = info.uid("study")
    ds.StudyID = info.study_id[-16:]
    ds.AccessionNumber = info.study_id[-16:]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = info.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.BodyPartExamined = "CHEST"
    return ds


def write_radiograph(
    path: Path,
    image: np.ndarray,
    info: StudyInfo,
    *,
    modality: str,
    view: str,
    photometric: str,
    pixel_mm: float,
    magnification: float,
    syntax: str = "explicit",
) -> None:
    """Write a radiograph as a 12-bit DX or CR image.

    Args:
        path: output ``.dcm`` file.
        image: brightness in ``[0, 1]`` as displayed, ``(rows, cols)``.
        info: patient and study attributes.
        modality: ``DX`` or ``CR``.
        view: ``PA`` or ``AP``.
        photometric: ``MONOCHROME2`` (stored as displayed) or ``MONOCHROME1`` (stored inverted).
        pixel_mm: pixel size at the patient (``PixelSpacing``); the detector pixel (``ImagerPixelSpacing``)
            is ``pixel_mm * magnification``.
        magnification: ``EstimatedRadiographicMagnificationFactor``.
        syntax: ``explicit``, ``rle`` or ``j2k``.
    """
    ds = _dataset(info, info.uid("image"), modality)
    ds.SeriesInstanceUID = info.uid("series")
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.SeriesDescription = f"CHEST {view}"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ViewPosition = view
    ds.PatientOrientation = ["L", "F"]
    ds.PresentationLUTShape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"
    ds.PixelSpacing = [round(pixel_mm, 6)] * 2
    ds.ImagerPixelSpacing = [round(pixel_mm * magnification, 6)] * 2
    ds.EstimatedRadiographicMagnificationFactor = round(magnification, 6)
    ds.PixelSpacingCalibrationType = "GEOMETRY"
    ds.WindowCenter, ds.WindowWidth = RADIOGRAPH_MAX // 2 + 1, RADIOGRAPH_MAX + 1
    stored = np.rint(np.clip(image, 0.0, 1.0) * RADIOGRAPH_MAX).astype(np.uint16)
    if photometric == "MONOCHROME1":
        stored = RADIOGRAPH_MAX - stored
    save_dataset(ds, stored, path, TRANSFER_SYNTAXES[syntax], photometric, RADIOGRAPH_MAX.bit_length())


def write_ct_series(
    folder: Path,
    hu: np.ndarray,
    geometry: CtGeometry,
    info: StudyInfo,
    rng: np.random.Generator,
    *,
    syntax: str = "explicit",
    signed: bool = False,
) -> list[Path]:
    """Write a CT volume as one axial series, one file per slice.

    Args:
        folder: output folder (created).
        hu: HU values ``[slice, row, column]`` as int16, slice 0 lowest (see :class:`CtGeometry`).
        geometry: grid of the volume.
        info: patient and study attributes.
        rng: draws file names and the instance-number order.
        syntax: ``explicit``, ``rle`` or ``j2k``.
        signed: store int16 with intercept 0; otherwise uint16 with intercept -1024 (12 bits stored).

    Returns:
        The files written, in slice order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    depth = hu.shape[0]
    dz, dy, dx = geometry.spacing
    order = rng.choice(("ascending", "descending", "shuffled"))
    numbers = {
        "ascending": np.arange(depth),
        "descending": np.arange(depth)[::-1],
        "shuffled": rng.permutation(depth),
    }[order] + 1
    names = [f"{rng.bytes(8).hex()}.dcm" for _ in range(depth)]
    series_uid, frame_uid = info.uid("series"), info.uid("frame")
    intercept = 0 if signed else -1024
    paths = []
    for k in range(depth):
        ds = _dataset(info, info.uid("slice", k), "CT")
        ds.SeriesInstanceUID, ds.FrameOfReferenceUID = series_uid, frame_uid
        ds.SeriesNumber, ds.InstanceNumber = 2, int(numbers[k])
        ds.SeriesDescription = "AXIAL CHEST-ABDOMEN"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientPosition = "HFS"
        ds.KVP = 120
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        z = geometry.origin[2] + k * dz
        ds.ImagePositionPatient = [geometry.origin[0], geometry.origin[1], round(z, 4)]
        ds.SliceLocation = round(z, 4)
        ds.SliceThickness = ds.SpacingBetweenSlices = dz
        ds.PixelSpacing = [round(dy, 6), round(dx, 6)]
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = intercept, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        stored = (hu[k].astype(np.int32) - intercept).astype(np.int16 if signed else np.uint16)
        path = folder / names[k]
        save_dataset(ds, stored, path, TRANSFER_SYNTAXES[syntax], "MONOCHROME2", 16 if signed else 12)
        paths.append(path)
    return paths
