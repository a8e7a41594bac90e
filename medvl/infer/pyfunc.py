"""The MLflow pyfunc flavour of a medvl model: embeddings of texts, images and volumes.

Input: a DataFrame with a ``text`` column and/or a ``path`` column (an image file, a DICOM file or series
folder, a NIfTI/NRRD volume); each row is a text when ``text`` is non-empty, else the image at ``path``.
An optional ``modality`` column (e.g. ``CT``) picks the intensity rule for files that do not record it
(NIfTI, NRRD); DICOM files say it themselves.
Output: a DataFrame with ``kind`` (text / image / volume), ``embedding`` (list of floats, L2-normalised, in
the joint space) and ``slice_weights`` (the slice-pooling attention for volumes, else empty).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch

MODEL_ARTIFACT = "medvl_model"
PIP_REQUIREMENTS = [
    "medvl",
    "torch",
    "monai",
    "transformers",
    "tokenizers",
    "safetensors",
    "pydicom",
    "nibabel",
]

try:
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover - mlflow is a dependency
    PythonModel = object  # type: ignore[assignment,misc]


class MedvlEmbedder(PythonModel):
    """Loads the saved model folder from the artifacts and embeds rows of texts or image paths."""

    def load_context(self, context: Any) -> None:
        from medvl.infer.loading import load_for_inference

        self.model, self.settings = load_for_inference(context.artifacts[MODEL_ARTIFACT])

    @torch.no_grad()
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from medvl.infer.embed import encode_texts
        from medvl.infer.loading import prepare_input

        rows = []
        for _, row in model_input.iterrows():
            text = row.get("text")
            if isinstance(text, str) and text.strip():
                emb = encode_texts(self.model, [text], torch.device("cpu"))[0]
                rows.append({"kind": "text", "embedding": emb.tolist(), "slice_weights": []})
                continue
            path = row.get("path")
            if not isinstance(path, str) or not path:
                raise ValueError("each row needs a non-empty 'text' or 'path'")
            modality = row.get("modality")
            item = prepare_input(
                Path(path), self.settings, modality if isinstance(modality, str) and modality else "OT"
            )
            if item.is_volume and self.model.encodes_volumes:
                slices, z_mm = item.volume_tensors()
                out = self.model.encode_volume(slices, z_mm)
                rows.append({"kind": "volume", "embedding": out.embedding[0].tolist(),
                             "slice_weights": out.slice_weights[0].tolist()})  # fmt: skip
            else:
                emb = self.model.encode_image(item.image_tensor())[0]
                rows.append({"kind": "image", "embedding": emb.tolist(), "slice_weights": []})
        return pd.DataFrame(rows)


def input_signature() -> Any:
    """The pyfunc's input schema (see the module docstring): optional ``text``, ``path`` and ``modality`` string
    columns. Stated because MLflow cannot infer it from the DataFrame type hints (and warns on every log)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec("string", name, required=False) for name in ("text", "path", "modality")]))


def log_pyfunc(
    model_dir: str | Path, run_id: str, tracking_uri: str, registered_name: str = ""
) -> tuple[str, str | None]:
    """Log the saved model folder as a pyfunc model of ``run_id``; register it when a name is given.

    Returns the logged model's URI and the registered version (None when not registered).
    """
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
            artifacts={MODEL_ARTIFACT: str(Path(model_dir).resolve())},
            pip_requirements=PIP_REQUIREMENTS,
            registered_model_name=registered_name or None,
            signature=input_signature(),
        )
    version = getattr(info, "registered_model_version", None)
    return info.model_uri, (str(version) if version is not None else None)
