"""A saved model with the preprocessing it was trained with, and images prepared exactly the same way."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medvl.data.preprocess import PrepSettings, prepare, prepare_record
from medvl.io import ImageRecord
from medvl.models.registry import load_pretrained
from medvl.models.vlm import VisionLanguageModel

PREPROCESS_FILE = "preprocess.json"
CONCEPTS_FILE = "concepts.json"


def save_preprocess(settings: PrepSettings, model_dir: str | Path) -> Path:
    """Store the cache's preprocessing next to a saved model."""
    path = Path(model_dir) / PREPROCESS_FILE
    path.write_text(json.dumps(settings.as_dict(), indent=2) + "\n")
    return path


def read_preprocess(model_dir: str | Path) -> PrepSettings:
    """The preprocessing a saved model was trained with (defaults at the model's image size when absent)."""
    path = Path(model_dir) / PREPROCESS_FILE
    if path.is_file():
        return PrepSettings.from_dict(json.loads(path.read_text()))
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return PrepSettings(size=int(config["image"]["image_size"]))


def save_concepts(names: Sequence[str], model_dir: str | Path) -> Path:
    """Store the concept vocabulary a model's patch-concept term was trained on, next to the model."""
    path = Path(model_dir) / CONCEPTS_FILE
    path.write_text(json.dumps({"concepts": list(names)}, indent=2) + "\n")
    return path


def read_concepts(model_dir: str | Path) -> list[str]:
    """The trained concept vocabulary of a saved model, most frequent first (empty for a model without one).

    Raises:
        ValueError: the file exists but is not a ``{"concepts": [names]}`` object.
    """
    path = Path(model_dir) / CONCEPTS_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from exc
    names = data.get("concepts") if isinstance(data, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{path}: expected {{\"concepts\": [concept names]}}")
    return names


def load_for_inference(model_dir: str | Path, device: str | torch.device = "cpu") -> tuple[VisionLanguageModel, PrepSettings]:
    """The model in eval mode on ``device`` and its preprocessing settings."""
    model = load_pretrained(model_dir).to(device).eval()
    return model, read_preprocess(model_dir)


@dataclass
class ModelInput:
    """One image or volume prepared for a model.

    Attributes:
        pixels: ``(S, H, W)`` float32 in ``[0, 1]`` (S = 1 for a 2D image), the radiological view.
        z_mm: ``(S,)`` slice positions in mm.
        content_box: ``(top, left, bottom, right)`` of the image inside the padded square.
    """

    pixels: np.ndarray
    z_mm: np.ndarray
    content_box: tuple[int, int, int, int]

    @property
    def is_volume(self) -> bool:
        """True when there is more than one slice."""
        return self.pixels.shape[0] > 1

    def image_tensor(self) -> torch.Tensor:
        """``(1, 1, H, W)`` for a 2D image (the first slice of a volume)."""
        return torch.from_numpy(self.pixels[:1]).unsqueeze(0)

    def volume_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(1, S, 1, H, W)`` slices and ``(1, S)`` positions."""
        return torch.from_numpy(self.pixels)[None, :, None], torch.from_numpy(self.z_mm)[None]


def prepare_input(
    source: str | Path | ImageRecord, settings: PrepSettings, modality: str = "OT", series_uid: str | None = None
) -> ModelInput:
    """Decode (a path) and prepare an image file, DICOM series or loaded record as the training cache did.

    Raises:
        MedvlIOError: the file cannot be read.
        ValueError: a constant image.
    """
    if isinstance(source, ImageRecord):
        prepared = prepare_record(source, settings, modality)
    else:
        prepared = prepare({"path": str(source), "modality": modality, "mask": "", "series_uid": series_uid or ""}, settings)
    pixels = prepared.pixels.astype(np.float32) / 255.0
    return ModelInput(pixels, prepared.z_mm.astype(np.float32), tuple(int(v) for v in prepared.content_box))
