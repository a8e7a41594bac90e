"""Helpers shared by the review-app tests: a small untrained model, real image files, app settings."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from medvl.io.dicom_writer import write_image, write_series

SMALL_TEXT = {"hf_config": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                            "intermediate_size": 64, "max_position_embeddings": 256}}  # fmt: skip
PASSWORD = "correct-horse-battery"
HOME_PAGE = str(Path(__file__).resolve().parents[1] / "app" / "Home.py")
APP_TIMEOUT = 300


def save_small_model(folder: Path) -> Path:
    """An untrained tiny volume model (ResNet-18 quarter width, slice pooling in stage volume, 1-layer text)
    saved to ``folder``."""
    from medvl.models.registry import build_model

    torch_seed()
    return build_model("tiny-radclip-resnet18", text=SMALL_TEXT, schedule={"stage": "volume"}).save_pretrained(folder)


def torch_seed() -> None:
    """Fix torch's RNG so the untrained test model is the same in every run."""
    import torch

    torch.manual_seed(0)


def chest_png(path: Path, size: int = 96, seed: int = 0) -> Path:
    """A grey radiograph-like PNG (an ellipse on a gradient with noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = 80 + 100 * ((xx - 0.5) ** 2 / 0.1 + (yy - 0.5) ** 2 / 0.15 < 1) + 30 * yy + rng.normal(0, 5, (size, size))
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)
    return path


def dicom_radiograph(path: Path, size: int = 64) -> Path:
    """A DX DICOM file with a patient name and id (the app must never show them)."""
    image = (np.add.outer(np.arange(size), np.arange(size)) * 8 % 4000).astype(np.uint16)
    return write_image(image, path, pixel_spacing=(0.5, 0.5),
                       attributes={"PatientName": "DOE^JANE", "PatientID": "MRN-12345", "PatientBirthDate": "19500101"})  # fmt: skip


def ct_series(folder: Path, depth: int = 6, size: int = 32) -> list[Path]:
    """An axial CT series (RAS affine, 2 x 2 x 3 mm) with a bright sphere in the middle slices."""
    zz, yy, xx = np.meshgrid(np.arange(depth), np.arange(size), np.arange(size), indexing="ij")
    sphere = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 + ((zz - depth / 2) * 4) ** 2 < (size / 4) ** 2
    hu = np.where(sphere, 60.0, -800.0).transpose(2, 1, 0)  # (X, Y, Z)
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    return write_series(hu, affine, folder, attributes={"PatientName": "DOE^JOHN", "PatientID": "MRN-999"})


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """A deflated zip of ``{member name: content}``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def app_env(tmp: Path, model_dir: Path, **extra: str) -> dict[str, str]:
    """``MEDVL_REVIEW_*`` variables for an app with a reviewer ``ann`` and an admin ``root`` (password PASSWORD)."""
    from app.auth import UserStore

    users = tmp / "users.yaml"
    if not users.exists():
        store = UserStore(users)
        store.add("ann", PASSWORD, "reviewer")
        store.add("root", PASSWORD, "admin")
    env = {"MEDVL_REVIEW_MODEL": str(model_dir), "MEDVL_REVIEW_USERS": str(users),
           "MEDVL_REVIEW_DB": f"sqlite:///{tmp / 'feedback.db'}", "MEDVL_REVIEW_AUDIT": str(tmp / "audit.jsonl"),
           "MEDVL_REVIEW_PROMPTS": "phantom"}  # fmt: skip
    return {**env, **{f"MEDVL_REVIEW_{k.upper()}": v for k, v in extra.items()}}


def login(name: str = "ann", password: str = PASSWORD, at=None):
    """An AppTest of the Home page (or ``at``) after submitting the login form with ``name`` and ``password``."""
    from streamlit.testing.v1 import AppTest

    at = at or AppTest.from_file(HOME_PAGE, default_timeout=APP_TIMEOUT)
    at.run()
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    at.button[0].click()
    at.run()
    return at
