"""Source adapters on tiny trees built in the exact upstream layouts, and covid-cxr on the real bundle."""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ComprehensiveSRStorage,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

from medvl.data.adapters import get_adapter
from medvl.data.adapters.base import SourceAdapter, UnitResult
from medvl.data.adapters.common import CHEXPERT_LABELS, normalise_view, parse_age, probe_file
from medvl.data.adapters.covid_cxr import LABEL_SPACE, finding_labels
from medvl.data.adapters.ct_rate import ABNORMALITIES
from medvl.data.adapters.iu_xray import mesh_labels
from medvl.data.ingest import ingest
from medvl.data.manifest import read_manifest
from medvl.data.splits import check_patient_splits


def write_jpeg(path: Path, value: int = 100, size: tuple[int, int] = (24, 20)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1], value, dtype=np.uint8)).save(path, format="JPEG")
    return path


def write_csv_gz(path: Path, rows: list[dict]) -> None:
    with gzip.open(path, "wt") as handle:
        pd.DataFrame(rows).to_csv(handle, index=False)


def ingest_rows(source: str, root: Path, tmp_path: Path, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    result = ingest(source, root, tmp_path / "out" / "m.parquet", progress=False, **kwargs)
    return read_manifest(result.manifest), pd.read_csv(result.quarantine, dtype=str, keep_default_na=False)


# ---------------------------------------------------------------- MIMIC-CXR-JPG


def build_mimic(root: Path) -> None:
    """Two patients, three studies, one image missing on disk, one report missing."""
    images = [  # subject, study, dicom_id, split, view, on_disk
        ("10000032", "50414267", "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014", "train", "PA", True),
        ("10000032", "50414267", "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962", "train", "LATERAL", True),
        ("10000032", "53189527", "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab", "train", "AP", True),
        ("10000764", "57375967", "096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4", "test", "AP", True),
        ("10000764", "57375967", "b79e55c3-735ce5ac-64412506-cdc9ea79-f1af521f", "test", "LL", False),
    ]
    split, metadata = [], []
    for subject, study, dicom_id, name, view, on_disk in images:
        split.append({"dicom_id": dicom_id, "study_id": study, "subject_id": subject, "split": name})
        metadata.append({"dicom_id": dicom_id, "subject_id": subject, "study_id": study,
                         "PerformedProcedureStepDescription": "CHEST (PA AND LAT)", "ViewPosition": view,
                         "Rows": 20, "Columns": 24, "StudyDate": 21800506, "StudyTime": 213014.531,
                         "ProcedureCodeSequence_CodeMeaning": "CHEST (PA AND LAT)",
                         "ViewCodeSequence_CodeMeaning": "postero-anterior",
                         "PatientOrientationCodeSequence_CodeMeaning": "Erect"})
        if on_disk:
            write_jpeg(root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom_id}.jpg")
    write_csv_gz(root / "mimic-cxr-2.0.0-split.csv.gz", split)
    write_csv_gz(root / "mimic-cxr-2.0.0-metadata.csv.gz", metadata)
    labels = [{"subject_id": "10000032", "study_id": "50414267", **dict.fromkeys(CHEXPERT_LABELS, ""),
               "No Finding": "1.0"},
              {"subject_id": "10000032", "study_id": "53189527", **dict.fromkeys(CHEXPERT_LABELS, ""),
               "Pleural Effusion": "-1.0", "Edema": "0.0", "Cardiomegaly": "1.0"}]
    write_csv_gz(root / "mimic-cxr-2.0.0-chexpert.csv.gz", labels)
    for subject, study in (("10000032", "50414267"), ("10000764", "57375967")):
        report = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
        report.write_text("FINAL REPORT\n EXAMINATION: CHEST (PA AND LAT)\n\n FINDINGS: No focal consolidation.\n\n"
                          " IMPRESSION: No acute cardiopulmonary process.\n")


def test_an_adapter_implements_read_unit():
    class Units(SourceAdapter):
        def units(self):
            return ["a"]

    class Reads(Units):
        def read_unit(self, unit):
            return UnitResult([{"unit": unit}])

    assert Reads(".").read_unit("a") == UnitResult([{"unit": "a"}])
    with pytest.raises(TypeError, match="abstract method.*read_unit"):
        Units(".")


def test_mimic_cxr_tree(tmp_path):
    build_mimic(tmp_path / "mimic")
    df, quarantine = ingest_rows("mimic-cxr", tmp_path / "mimic", tmp_path)
    assert sorted(df["study_id"]) == ["50414267", "53189527", "57375967"]
    first = df.set_index("study_id").loc["50414267"]
    assert first["patient_id"] == "10000032"
    assert [ref["view"] for ref in first["images"]] == ["PA", "LATERAL"]
    assert first["view"] == "PA"
    assert first["findings"] == "No focal consolidation."
    assert first["impression"] == "No acute cardiopulmonary process."
    assert json.loads(first["labels"]) == {"No Finding": 1}
    second = df.set_index("study_id").loc["53189527"]
    assert json.loads(second["labels"]) == {"Cardiomegaly": 1, "Edema": 0, "Pleural Effusion": -1}
    assert second["report"] == ""
    third = df.set_index("study_id").loc["57375967"]
    assert len(third["images"]) == 1 and third["split"] == "test" and json.loads(third["labels"]) == {}
    assert set(df.loc[df["patient_id"] == "10000032", "split"]) == {"train"}  # the source split is kept
    reasons = dict(zip(quarantine["path"].map(lambda p: Path(p).name), quarantine["reason"], strict=True))
    assert reasons["b79e55c3-735ce5ac-64412506-cdc9ea79-f1af521f.jpg"] == "file not found"
    assert "report file not found" in reasons["s53189527.txt"]


def test_mimic_cxr_refuses_a_patient_in_two_source_splits(tmp_path):
    root = tmp_path / "mimic"
    build_mimic(root)
    table = pd.read_csv(root / "mimic-cxr-2.0.0-split.csv.gz", dtype=str)
    table.loc[table["study_id"] == "53189527", "split"] = "validate"
    write_csv_gz(root / "mimic-cxr-2.0.0-split.csv.gz", table.to_dict("records"))
    with pytest.raises(ValueError, match="patient '10000032' is in splits"):
        ingest("mimic-cxr", root, tmp_path / "m.parquet", progress=False)


# ---------------------------------------------------------------- CheXpert


def build_chexpert(parent: Path) -> Path:
    root = parent / "CheXpert-v1.0-small"
    rows = []
    for split, patient, study, view, fl, appa, sex, age, labels in (
        ("train", "patient00001", "study1", "view1_frontal", "Frontal", "AP", "Female", "68", {"Support Devices": "1.0"}),
        ("train", "patient00002", "study2", "view1_frontal", "Frontal", "AP", "Female", "87",
         {"Cardiomegaly": "-1.0", "Lung Opacity": "1.0", "No Finding": ""}),
        ("train", "patient00002", "study2", "view2_lateral", "Lateral", "", "Female", "87",
         {"Cardiomegaly": "-1.0", "Lung Opacity": "1.0", "No Finding": ""}),
        ("train", "patient00003", "study1", "view1_frontal", "Frontal", "PA", "Unknown", "41", {"Edema": "7"}),
    ):
        path = f"CheXpert-v1.0-small/{split}/{patient}/{study}/{view}.jpg"
        write_jpeg(parent / path)
        rows.append({"Path": path, "Sex": sex, "Age": age, "Frontal/Lateral": fl, "AP/PA": appa,
                     **dict.fromkeys(CHEXPERT_LABELS, ""), **labels})
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    valid_path = "CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg"
    write_jpeg(parent / valid_path)
    pd.DataFrame([{"Path": valid_path, "Sex": "Male", "Age": "73", "Frontal/Lateral": "Frontal", "AP/PA": "AP",
                   **dict.fromkeys(CHEXPERT_LABELS, "0.0"), "No Finding": "1.0"}]).to_csv(root / "valid.csv", index=False)
    return root


def test_chexpert_tree(tmp_path):
    root = build_chexpert(tmp_path)
    df, quarantine = ingest_rows("chexpert", root, tmp_path)
    by_study = df.set_index("study_id")
    assert sorted(by_study.index) == ["patient00001/study1", "patient00002/study2", "patient64541/study1"]
    two = by_study.loc["patient00002/study2"]
    assert [ref["view"] for ref in two["images"]] == ["AP", "LATERAL"]
    assert json.loads(two["labels"]) == {"Cardiomegaly": -1, "Lung Opacity": 1}
    assert (two["sex"], two["age"], two["split"]) == ("F", 87.0, "train")
    valid = by_study.loc["patient64541/study1"]
    assert valid["split"] == "val" and json.loads(valid["labels"])["No Finding"] == 1
    assert len(json.loads(valid["labels"])) == 14
    assert Path(valid["images"][0]["path"]).is_file()
    # the study whose label column holds "7" is quarantined with the column named
    assert quarantine["unit"].tolist() == ["train/patient00003/study1"]
    assert "label 'Edema' has value '7'" in quarantine["reason"].iloc[0]


def test_chexpert_without_source_splits_draws_by_hash(tmp_path):
    root = build_chexpert(tmp_path)
    df, _ = ingest_rows("chexpert", root, tmp_path, source_splits=False, split_fractions=(0.0, 0.0, 1.0))
    assert set(df["split"]) == {"test"}


# ---------------------------------------------------------------- CT-RATE


def write_nifti(path: Path, spacing: tuple[float, float, float], depth: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.zeros((8, 8, depth), dtype=np.int16), np.diag([*spacing, 1.0])), path)


def build_ct_rate(root: Path) -> None:
    base = root / "dataset"
    volumes = {  # name -> header spacing
        "train_1_a_1.nii.gz": (0.75, 0.75, 1.5),
        "train_1_a_2.nii.gz": (0.75, 0.75, 1.5),
        "train_2_a_1.nii.gz": (1.0, 1.0, 1.0),  # placeholder header: the metadata says 0.6/2.0
        "valid_1_b_1.nii.gz": (0.7, 0.7, 1.25),
    }
    for name, spacing in volumes.items():
        split, patient, scan, _ = name.removesuffix(".nii.gz").split("_")
        write_nifti(base / split / f"{split}_{patient}" / f"{split}_{patient}_{scan}" / name, spacing)
    reports = {"train": [], "validation": []}
    labels = {"train": [], "valid": []}
    metadata = {"train": [], "validation": []}
    metadata_spacing = {"train_2_a_1.nii.gz": (0.6, 0.6, 2.0)}
    for name, spacing in volumes.items():
        csv = "train" if name.startswith("train") else "validation"
        reports[csv].append({"VolumeName": name, "ClinicalInformation_EN": "Cough.", "Technique_EN": "Non-contrast.",
                             "Findings_EN": f"Findings of {name[:9]}.", "Impressions_EN": "No acute finding."})
        labels[csv[:5]].append({"VolumeName": name, **{a: int(a == "Emphysema") for a in ABNORMALITIES}})
        xy, z = metadata_spacing.get(name, spacing)[:2], metadata_spacing.get(name, spacing)[2]
        metadata[csv].append({"VolumeName": name, "PatientSex": "M", "PatientAge": "062Y",
                              "XYSpacing": str(list(xy)), "ZSpacing": z, "RescaleSlope": 1, "RescaleIntercept": -1024})
    for csv, rows in reports.items():
        (base / "radiology_text_reports").mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(base / "radiology_text_reports" / f"{csv}_reports.csv", index=False)
    for split, rows in labels.items():
        (base / "multi_abnormality_labels").mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(base / "multi_abnormality_labels" / f"{split}_predicted_labels.csv", index=False)
    for csv, rows in metadata.items():
        (base / "metadata").mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(base / "metadata" / f"{csv}_metadata.csv", index=False)


def test_ct_rate_tree(tmp_path):
    build_ct_rate(tmp_path / "CT-RATE")
    df, quarantine = ingest_rows("ct-rate", tmp_path / "CT-RATE", tmp_path)
    by_study = df.set_index("study_id")
    assert sorted(by_study.index) == ["train_1_a", "valid_1_b"]
    scan = by_study.loc["train_1_a"]
    assert [Path(ref["path"]).name for ref in scan["images"]] == ["train_1_a_1.nii.gz", "train_1_a_2.nii.gz"]
    assert {ref["kind"] for ref in scan["images"]} == {"3d"} and {ref["modality"] for ref in scan["images"]} == {"CT"}
    assert (scan["patient_id"], scan["split"], scan["sex"], scan["age"]) == ("train_1", "train", "M", 62.0)
    assert scan["findings"] == "Findings of train_1_a." and scan["impression"] == "No acute finding."
    assert scan["report"].startswith("CLINICAL INFORMATION: Cough.")
    labels = json.loads(scan["labels"])
    assert len(labels) == 18 and labels["Emphysema"] == 1 and labels["Cardiomegaly"] == 0
    assert by_study.loc["valid_1_b", "split"] == "val"
    assert quarantine["path"].map(lambda p: Path(p).name).tolist() == ["train_2_a_1.nii.gz"]
    assert "differs from the metadata CSV" in quarantine["reason"].iloc[0]


def test_ct_rate_prefers_fixed_volumes(tmp_path):
    root = tmp_path / "CT-RATE"
    build_ct_rate(root)
    write_nifti(root / "dataset" / "train_fixed" / "train_2" / "train_2_a" / "train_2_a_1.nii.gz", (0.6, 0.6, 2.0))
    df, quarantine = ingest_rows("ct-rate", root, tmp_path)
    assert sorted(df["study_id"]) == ["train_2_a", "valid_1_b"]  # train/ is ignored once train_fixed/ exists
    assert "train_fixed" in df.set_index("study_id").loc["train_2_a", "images"][0]["path"]
    assert quarantine.empty


# ---------------------------------------------------------------- IU X-ray


IU_XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation><uId id="CXR{n}"/><MedlineCitation><Article><Abstract>
<AbstractText Label="COMPARISON">None.</AbstractText>
<AbstractText Label="INDICATION">Cough</AbstractText>
<AbstractText Label="FINDINGS">{findings}</AbstractText>
<AbstractText Label="IMPRESSION">{impression}</AbstractText>
</Abstract></Article></MedlineCitation>
<MeSH>{mesh}</MeSH>
<parentImage id="CXR{n}_1_IM-0001-3001"><figureId>F1</figureId></parentImage>
<parentImage id="CXR{n}_1_IM-0001-4001"><figureId>F2</figureId></parentImage>
</eCitation>"""


def build_iu(root: Path) -> Path:
    folder = root / "ecgen-radiology"
    folder.mkdir(parents=True)
    (folder / "1.xml").write_text(IU_XML.format(n=1, findings="Clear lungs.", impression="Normal chest.",
                                                mesh="<major>normal</major>"))
    (folder / "2.xml").write_text(IU_XML.format(n=2, findings="Enlarged heart.", impression="Cardiomegaly.",
                                                mesh="<major>Cardiomegaly/mild</major><major>Lung/hypoinflation</major>"))
    (folder / "3.xml").write_text(IU_XML.format(n=3, findings="", impression="", mesh="")
                                  .replace("None.", "").replace("Cough", ""))
    archive = root / "NLMCXR_reports.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="ecgen-radiology")
    return archive


def test_iu_xray_text_only(tmp_path):
    archive = build_iu(tmp_path / "iu")
    df, quarantine = ingest_rows("iu-xray", archive, tmp_path)
    assert df["study_id"].tolist() == ["CXR1", "CXR2"]
    assert df["images"].map(len).tolist() == [0, 0]
    second = df.iloc[1]
    assert second["findings"] == "Enlarged heart." and "INDICATION: Cough" in second["report"]
    assert json.loads(second["labels"]) == {"Cardiomegaly": 1, "Lung/hypoinflation": 1}
    assert quarantine["unit"].tolist() == ["CXR3"]  # neither text nor image


def test_iu_xray_with_images(tmp_path):
    archive = build_iu(tmp_path / "iu")
    for name in ("CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001", "CXR2_1_IM-0001-3001"):
        path = tmp_path / "iu" / "NLMCXR_png" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    df, quarantine = ingest_rows("iu-xray", archive, tmp_path)
    assert df["images"].map(len).tolist() == [2, 1]
    assert "CXR2_1_IM-0001-4001.png" in set(quarantine["path"].map(lambda p: Path(p).name))


def test_iu_mesh_labels():
    assert mesh_labels(["normal"]) == {"No Finding": 1}
    assert mesh_labels(["No Indexing"]) == {}
    assert mesh_labels(["Diaphragm/right/elevated", "Opacity/lung/base/left"]) == {"Diaphragm/elevated": 1, "Opacity": 1}


# ---------------------------------------------------------------- covid-cxr (real bundle)


def test_covid_cxr_real_bundle(realdata, tmp_path):
    root = realdata / "cxr_covid"
    df, quarantine = ingest_rows("covid-cxr", root, tmp_path)
    metadata = pd.read_csv(root / "metadata.csv", dtype=str, keep_default_na=False)
    refs = [ref for refs in df["images"] for ref in refs]
    images = [ref["path"] for ref in refs]
    assert len(images) == len(set(images))  # every image file in one study only
    assert set(images) == {str(root / name) for name in metadata["image"]}  # and none lost
    assert {ref["mask"] for ref in refs} - {""} == {str(root / m) for m in metadata["lung_mask"] if m}
    # upstream lists a few images under two patient ids: the later study goes to the quarantine report
    assert len(quarantine) > 0 and set(quarantine["error_type"]) == {"DuplicateImage"}
    check_patient_splits(df)
    assert set(df["split"]) == {"train", "val", "test"}
    two_views = df[df["images"].map(lambda r: {ref["view"] for ref in r} == {"PA", "LATERAL"})]
    assert len(two_views) > 10 and set(two_views["view"]) == {"PA"}
    labels = df["labels"].map(json.loads)
    assert set().union(*labels) <= set(LABEL_SPACE)
    covid = labels.map(lambda d: d.get("COVID-19"))
    assert (covid == 1).sum() > 50 and (covid == 0).sum() > 10 and covid.isna().sum() > 10  # todo = unlabelled
    assert df["report"].str.len().gt(0).all()


def test_covid_finding_labels():
    assert finding_labels("todo") == {}
    assert finding_labels("COVID-19, ARDS") == {"ARDS": 1, "COVID-19": 1, "No Finding": 0, "Pneumonia": 1, "Viral": 1}
    assert finding_labels("Pneumonia/Bacterial/Streptococcus")["Streptococcus"] == 1
    assert finding_labels("Mycoplasma Bacterial Pneumonia")["Mycoplasma"] == 1
    normal = finding_labels("No Finding")
    assert normal["No Finding"] == 1 and set(normal.values()) == {0, 1} and sum(normal.values()) == 1
    with pytest.raises(ValueError, match="unknown term 'Martian flu'"):
        finding_labels("Pneumonia/Viral/Martian flu")


# ---------------------------------------------------------------- shared helpers


def test_normalise_view_and_age():
    assert [normalise_view(v) for v in ("PA", "AP Supine", "L", "ll", "?", "", "postero_anterior")] == [
        "PA", "AP", "LATERAL", "LATERAL", "", "", "PA"]
    assert parse_age("054Y") == 54 and parse_age("54.0") == 54 and parse_age("") is None
    assert parse_age("006M") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="not a number"):
        parse_age("old")


def test_probe_file_catches_missing_empty_and_misnamed(tmp_path):
    good = write_jpeg(tmp_path / "a.jpg")
    empty = tmp_path / "b.jpg"
    empty.write_bytes(b"")
    misnamed = tmp_path / "c.png"
    misnamed.write_bytes(good.read_bytes())
    assert probe_file(good) is None
    assert probe_file(tmp_path / "none.jpg").error_type == "MissingFileError"
    assert probe_file(empty).reason == "file is empty"
    assert "PNG signature" in probe_file(misnamed).reason


def test_unknown_source_lists_known_ones():
    with pytest.raises(KeyError, match="known sources: .*covid-cxr"):
        get_adapter("nope")


# ---------------------------------------------------------------- dicom-folder (real DICOM written by pydicom)


def write_dicom(path: Path, *, patient: str | None = "PAT1", study: str = "1.2.826.0.1.1", series: str = "1.2.826.0.1.1.1",
                modality: str = "CT", z: float = 0.0, instance: int = 1, accession: str = "ACC1", view: str = "",
                pixels: np.ndarray | None = None, with_pixels: bool = True) -> Path:
    """A small valid DICOM file (CT slice, CR image or SR without pixels) written by pydicom."""

    sop_class = {"CT": CTImageStorage, "CR": ComputedRadiographyImageStorage}.get(modality, ComprehensiveSRStorage)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.AccessionNumber = study, series, accession
    if patient is not None:
        ds.PatientID = patient
    ds.PatientSex, ds.PatientAge, ds.Modality, ds.InstanceNumber = "F", "061Y", modality, instance
    if view:
        ds.ViewPosition = view
    if with_pixels:
        array = pixels if pixels is not None else (np.arange(64, dtype=np.uint16).reshape(8, 8) + 10 * instance)
        ds.Rows, ds.Columns = array.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelSpacing = [0.8, 0.7]
        if modality == "CT":
            ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, z], [1, 0, 0, 0, 1, 0]
            ds.SliceThickness, ds.RescaleSlope, ds.RescaleIntercept = 2.0, 1, -1024
        ds.PixelData = array.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def build_pacs(root: Path) -> Path:
    for k in range(3):
        write_dicom(root / "PAT1" / "CT" / f"slice{k}.dcm", z=2.0 * k, instance=k + 1)
    (root / "PAT1" / "CT" / "README.txt").write_text("exported by PACS\n")
    write_dicom(root / "PAT1" / "SR" / "sr.dcm", modality="SR", series="1.2.826.0.1.1.9", with_pixels=False)
    write_dicom(root / "PAT1" / "XR" / "cr.dcm", modality="CR", study="1.2.826.0.1.2", series="1.2.826.0.1.2.1",
                accession="ACC2", view="PA")
    for k in range(4):  # one series split over two directories
        write_dicom(root / "PAT2" / ("CT_a" if k < 2 else "CT_b") / f"s{k}.dcm", patient="PAT2", study="1.2.826.0.1.3",
                    series="1.2.826.0.1.3.1", accession="ACC3", z=2.0 * k, instance=k + 1)
    write_dicom(root / "PAT3" / "x.dcm", patient=None, study="1.2.826.0.1.4", series="1.2.826.0.1.4.1")
    reports = root.parent / "reports.csv"
    pd.DataFrame([
        {"AccessionNumber": "ACC1", "report": "FINDINGS: Small nodule right upper lobe.\nIMPRESSION: Nodule."},
        {"AccessionNumber": "ACC3", "report": "Normal study.", "impression": "Normal."},
    ]).to_csv(reports, index=False)
    return reports


def test_dicom_folder_tree(tmp_path):
    reports = build_pacs(tmp_path / "export")
    df, quarantine = ingest_rows("dicom-folder", tmp_path / "export", tmp_path, options={"reports": str(reports)})
    by_study = df.set_index("study_id")
    assert sorted(by_study.index) == ["1.2.826.0.1.1", "1.2.826.0.1.2", "1.2.826.0.1.3"]
    ct = by_study.loc["1.2.826.0.1.1"]
    assert ct["patient_id"] == "PAT1" and (ct["sex"], ct["age"]) == ("F", 61.0)
    assert ct["images"] == [{"path": str(tmp_path / "export" / "PAT1" / "CT"), "modality": "CT", "view": "",
                             "kind": "3d", "mask": "", "series_uid": "1.2.826.0.1.1.1"}]
    assert ct["findings"] == "Small nodule right upper lobe." and ct["impression"] == "Nodule."
    cr = by_study.loc["1.2.826.0.1.2"]
    assert cr["images"][0]["kind"] == "2d" and cr["images"][0]["path"].endswith("cr.dcm") and cr["view"] == "PA"
    assert cr["report"] == ""
    split_series = by_study.loc["1.2.826.0.1.3"]
    assert [ref["path"] for ref in split_series["images"]] == [str(tmp_path / "export" / "PAT2")]
    assert split_series["impression"] == "Normal." and split_series["report"] == "Normal study."
    kinds = dict(zip(quarantine["path"].map(lambda p: Path(p).name), quarantine["error_type"], strict=True))
    assert kinds == {"README.txt": "NotAnImageError", "sr.dcm": "NoPixelDataError", "x.dcm": "MetadataError",
                     "XR": "MissingReport"}


def test_dicom_folder_shards_merge_like_one_run(tmp_path):
    from medvl.data.ingest import merge_shards

    reports = build_pacs(tmp_path / "export")
    options = {"reports": str(reports)}
    whole = ingest("dicom-folder", tmp_path / "export", tmp_path / "w.parquet", options=options, progress=False)
    parts = [ingest("dicom-folder", tmp_path / "export", tmp_path / f"p{i}.parquet", shard=(i, 3), options=options,
                    progress=False).manifest for i in range(3)]
    assert merge_shards(parts, tmp_path / "m.parquet").hash == whole.hash


def test_dicom_folder_reports_csv_errors(tmp_path):
    build_pacs(tmp_path / "export")
    bad = tmp_path / "bad.csv"
    pd.DataFrame([{"StudyID": "1", "report": "x"}]).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="no key column"):
        ingest("dicom-folder", tmp_path / "export", tmp_path / "m.parquet", options={"reports": str(bad)},
               progress=False)
    pd.DataFrame([{"AccessionNumber": "A", "report": "x"}, {"AccessionNumber": "A", "report": "y"}]).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="'A' has more than one report row"):
        ingest("dicom-folder", tmp_path / "export", tmp_path / "m.parquet", options={"reports": str(bad)},
               progress=False)
