"""A model's reading of one study, as the review app and ``medvl predict`` give it.

:class:`Reader` bundles a saved model with what was saved beside it (preprocessing, text bank, calibration,
training domain). :meth:`Reader.read` encodes a prepared study once and returns a :class:`StudyReading`: the
out-of-distribution check, the findings offered for the input's kind with calibrated probabilities and
operating-point decisions, and the most relevant slices of a volume.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medvl.infer.attribution import (
    ImageAnalysis,
    TextBank,
    analyse,
    build_text_bank,
    finding_scores,
    observations_for,
    slice_scores,
    top_slices,
)
from medvl.infer.calibration import ModelCalibration, read_calibration
from medvl.infer.domain import DomainCheck, TrainingDomain, image_statistics, read_domain
from medvl.infer.loading import ModelInput, load_for_inference, read_concepts
from medvl.text.prompts import DEFAULT_PROMPTS, prompt_set


def kind_of(model_input: ModelInput) -> str:
    """``3d`` for a volume, ``2d`` for a radiograph."""
    return "3d" if model_input.is_volume else "2d"


@dataclass(frozen=True)
class Finding:
    """One finding of a study.

    Attributes:
        score: the model's raw zero-shot score (see :func:`medvl.infer.attribution.finding_scores`).
        probability: the calibrated probability (the raw score where the model has no calibration).
        threshold: the operating point on ``probability`` (None when uncalibrated).
        positive: ``probability >= threshold`` (None when uncalibrated).
        source: ``concept`` or ``prompts`` (what produced the score).
        prompts: the texts behind the score (positive, then negative).
    """

    name: str
    score: float
    probability: float
    threshold: float | None
    positive: bool | None
    source: str
    prompts: tuple[list[str], list[str]]

    @property
    def calibrated(self) -> bool:
        """True when the probability went through the model's calibration."""
        return self.threshold is not None


@dataclass
class StudyReading:
    """Everything :meth:`Reader.read` says about one study.

    Attributes:
        kind: ``2d`` or ``3d``.
        analysis: the encoder's pass (for heatmaps and slice relevance).
        findings: the findings offered for this kind, most probable first.
        domain: the out-of-distribution check (None for a model saved without a training domain).
        top_slices: a volume's three most relevant slice indices for its top finding (empty for a radiograph, and
            for a volume the model offers no finding for).
    """

    kind: str
    analysis: ImageAnalysis
    findings: list[Finding]
    domain: DomainCheck | None
    top_slices: list[int]

    @property
    def out_of_distribution(self) -> bool:
        """True when the input lies outside the model's training domain."""
        return self.domain is not None and not self.domain.inside


class Reader:
    """A saved model ready to read studies (load once, read many)."""

    def __init__(
        self, model_dir: str | Path, prompts: str = DEFAULT_PROMPTS, device: str | torch.device = "cpu"
    ) -> None:
        """Load the model folder with its preprocessing, text bank, calibration and training domain.

        Raises:
            ValueError: a file saved beside the weights cannot be read; an unknown prompt set.
        """
        self.model_dir = Path(model_dir)
        self.device = torch.device(device)
        self.model, self.prep = load_for_inference(self.model_dir, self.device)
        self.prompts = prompts
        self.bank: TextBank = build_text_bank(
            self.model,
            prompt_set(prompts),
            trained_concepts=read_concepts(self.model_dir),
            device=self.device,
        )
        self.calibration: ModelCalibration | None = read_calibration(self.model_dir)
        self.domain: TrainingDomain | None = read_domain(self.model_dir)

    def observations(self, kind: str) -> list[str]:
        """The findings offered for ``kind``: those calibrated for it, else the label space's findings that apply
        to that kind (a model saved without calibration)."""
        applicable = observations_for(self.bank, kind == "3d")
        if self.calibration is None:
            return applicable
        calibrated = set(self.calibration.findings(kind))
        return [name for name in applicable if name in calibrated]

    def calibration_note(self, kind: str) -> str:
        """How the probabilities of ``kind`` were obtained, in one sentence."""
        if self.calibration is None:
            return "uncalibrated zero-shot scores (the model was saved without a calibration)"
        if self.prompts != self.calibration.prompts:
            return (f"uncalibrated zero-shot scores (the calibration was fitted with the '{self.calibration.prompts}' "
                    f"prompts, not '{self.prompts}')")  # fmt: skip
        return self.calibration.describe(kind)

    def read(self, model_input: ModelInput, modality: str = "", dense: bool = False) -> StudyReading:
        """Encode one prepared study and read it (``dense``: finer region embeddings for heatmaps)."""
        kind = kind_of(model_input)
        analysis = analyse(self.model, model_input, self.device, dense=dense)
        findings = self.findings(analysis, kind)
        domain = None
        if self.domain is not None:
            statistics = image_statistics(model_input.pixels, model_input.content_box)
            domain = self.domain.check(kind, modality, statistics, analysis.embedding.numpy())
        slices: list[int] = []
        if kind == "3d" and findings:
            direction = self.bank.direction(findings[0].name)
            slices = top_slices(slice_scores(analysis, direction, self.bank.scale))
        return StudyReading(kind, analysis, findings, domain, slices)

    def findings(self, analysis: ImageAnalysis, kind: str) -> list[Finding]:
        """The findings offered for ``kind``, calibrated where the model can, most probable first."""
        usable = self.calibration is not None and self.calibration.prompts == self.prompts
        table = self.calibration.kinds.get(kind, {}) if usable else {}
        out = []
        for score in finding_scores(analysis, self.bank, self.observations(kind)):
            fitted = table.get(score.name)
            if fitted is None:
                probability, threshold, positive = score.probability, None, None
            else:
                probability = float(fitted.apply(score.probability))
                threshold, positive = fitted.threshold, bool(probability >= fitted.threshold)
            out.append(Finding(score.name, score.probability, probability, threshold, positive, score.source,
                               (score.positive_prompts, score.negative_prompts)))  # fmt: skip
        return sorted(out, key=lambda f: -f.probability)


def raw_scores(reader: Reader, analyses: list[ImageAnalysis], kind: str) -> tuple[list[str], np.ndarray]:
    """The findings applicable to ``kind`` and their raw scores ``(N, F)`` for many analyses (for fitting)."""
    names = observations_for(reader.bank, kind == "3d")
    rows = [[s.probability for s in finding_scores(a, reader.bank, names)] for a in analyses]
    return names, np.asarray(rows, dtype=np.float64).reshape(len(analyses), len(names))
