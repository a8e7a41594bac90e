"""Why a model says what it says about one study: findings, concept heatmaps, slice relevance, top concepts.

One pass of the 2D image encoder over the study's slices (:func:`analyse`) gives everything the review app shows:

- the study embedding (the image's, or the slice-pooled volume's) for zero-shot **findings**
  (:func:`finding_scores`, the prompts used included) and a **free-text query** (:func:`query_score`);
- the **region (patch) embeddings** of every slice, on twice the encoder's grid (shift-and-stitch): their
  similarity with a target direction in the joint space is the **heatmap** (:func:`heatmap`), upsampled to the image;
- the **slice relevance** of a volume: the slice-pooling attention weights (:attr:`ImageAnalysis.slice_weights`)
  and each slice's own score for the target (:func:`slice_scores`);
- the **lexicon concepts** closest to the study (:func:`top_concepts`).

A target is a direction in the joint space: for an observation, the text embedding of the concept the model's
patch-concept term aligned regions with (e.g. "pleural effusion"; :attr:`TextBank.region_concepts`), or, for a
model trained without that term, its positive minus its negative prompt-ensemble embedding (a region's score is
then its own zero-shot logit); for a lexicon concept, its text embedding; for a free text, its embedding minus its
negation's. Text embeddings are computed once per model (:func:`build_text_bank`).

The faithfulness helpers (:func:`pointing_hit`, :func:`top_region`, :func:`delete_region`) implement the
pointing game and the deletion test used to check the heatmaps against known lesion masks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medvl.infer.embed import encode_texts
from medvl.infer.loading import ModelInput
from medvl.infer.zeroshot import logit_scale_of, prompt_table, zero_shot_probabilities
from medvl.text.concepts import ConceptVocabulary
from medvl.text.labels import CT_OBSERVATIONS
from medvl.text.lexicon import Concept, Lexicon
from medvl.text.prompts import build_prompts

SLICE_CHUNK = 16
"""Slices encoded per forward pass (bounds memory on long volumes)."""
CONCEPT_FORMS = 2
"""Surface forms (preferred name first) averaged into a concept's text embedding."""


@dataclass(frozen=True)
class TextBank:
    """Text embeddings of one model, computed once: prompt ensembles per observation and lexicon concepts.

    Attributes:
        prompts: ``{observation: (positive prompts, negative prompts)}`` in label-space order.
        positive, negative: ``(C, D)`` normalised mean embeddings of each side's prompts.
        concepts: the lexicon concepts, row-aligned with ``concept_embeddings`` ``(K, D)``.
        scale: the model's similarity scale (learnt logit scale or ``1 / tau``).
        region_concepts: ``{observation: (concept name, (D,) normalised embedding)}``: the concept the model's
            patch-concept term aligned regions with, for the observations that have one (empty for a model trained
            without the term).
        concept_scale, concept_bias: the patch-concept term's logit scale (``exp`` taken) and bias, which turn the
            best region's similarity into the probability that term was trained to give (None without the term).
    """

    prompts: dict[str, tuple[list[str], list[str]]]
    positive: torch.Tensor
    negative: torch.Tensor
    concepts: tuple[Concept, ...]
    concept_embeddings: torch.Tensor
    scale: float
    region_concepts: dict[str, tuple[str, torch.Tensor]] = field(default_factory=dict)
    concept_scale: float | None = None
    concept_bias: float | None = None

    @property
    def observations(self) -> list[str]:
        """Observation names in label-space order."""
        return list(self.prompts)

    def direction(self, target: str) -> torch.Tensor:
        """The joint-space direction of an observation or a lexicon concept (by name).

        An observation's direction is the text embedding of its trained region concept when the model has one
        (what the patch-concept term aligned regions with, e.g. "pleural effusion"), else its positive minus its
        negative prompt-ensemble embedding.

        Raises:
            KeyError: ``target`` is neither an observation nor a concept name.
        """
        if target in self.region_concepts:
            return self.region_concepts[target][1]
        if target in self.prompts:
            j = self.observations.index(target)
            return self.positive[j] - self.negative[j]
        for concept, embedding in zip(self.concepts, self.concept_embeddings, strict=True):
            if concept.name == target:
                return embedding
        raise KeyError(f"'{target}' is neither an observation ({', '.join(self.prompts)}) nor a lexicon concept")

    def describe(self, target: str) -> str:
        """What a heatmap of ``target`` shows, in words (for captions)."""
        if target in self.region_concepts:
            return f"{target}: region similarity with the concept '{self.region_concepts[target][0]}'"
        if target in self.prompts:
            return f"{target}: region score of the positive vs negative prompts"
        return target


def _region_concepts(
    model: Any, observations: Sequence[str], trained_concepts: Sequence[str], device: torch.device
) -> dict[str, tuple[str, torch.Tensor]]:
    """Each observation's most frequent trained concept (see :class:`ConceptVocabulary`) and its embedding."""
    vocabulary = ConceptVocabulary(list(trained_concepts), Lexicon.default())
    chosen = {o: name for o in observations if (name := vocabulary.for_observation(o)) is not None}
    if not chosen:
        return {}
    embeddings = encode_texts(model, list(chosen.values()), device)  # the names alone, as in training
    return {o: (name, F.normalize(e, dim=0)) for (o, name), e in zip(chosen.items(), embeddings, strict=True)}


@torch.no_grad()
def build_text_bank(
    model: Any,
    prompts: Mapping[str, Any] | None = None,
    lexicon: Iterable[Concept] | None = None,
    device: str | torch.device = "cpu",
    trained_concepts: Sequence[str] = (),
) -> TextBank:
    """Embed the prompt ensembles and lexicon concepts for ``model`` (do it once per model).

    Args:
        model: a :class:`~medvl.models.vlm.VisionLanguageModel` in eval mode.
        prompts: ``{observation: PromptPair or (positive(s), negative(s))}``; default :func:`build_prompts`.
        lexicon: concepts to rank (a :class:`Lexicon` or any concepts); default :meth:`Lexicon.default`.
        device: where the model runs.
        trained_concepts: the concept vocabulary the model's patch-concept term was trained on
            (:func:`medvl.infer.loading.read_concepts`); observations with one of them get it as heatmap target.
    """
    table = prompt_table(prompts if prompts is not None else build_prompts())
    if not table:
        raise ValueError("prompts: give at least one observation with positive and negative prompts")
    device = torch.device(device)
    positive = torch.stack([F.normalize(encode_texts(model, pos, device).mean(0), dim=0) for pos, _ in table.values()])
    negative = torch.stack([F.normalize(encode_texts(model, neg, device).mean(0), dim=0) for _, neg in table.values()])
    concepts = tuple(lexicon if lexicon is not None else Lexicon.default())
    forms = [[f for f in c.surface_forms if "*" not in f][:CONCEPT_FORMS] for c in concepts]
    flat = encode_texts(model, [f for group in forms for f in group], device)
    bounds = np.cumsum([0] + [len(group) for group in forms])
    concept_embeddings = torch.stack(
        [F.normalize(flat[a:b].mean(0), dim=0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    ) if concepts else torch.zeros(0, positive.shape[1])  # fmt: skip
    regions = _region_concepts(model, list(table), trained_concepts, device)
    scale = getattr(model, "concept_logit_scale", None)
    bias = getattr(model, "concept_logit_bias", None)
    return TextBank(
        table, positive, negative, concepts, concept_embeddings, logit_scale_of(model), regions,
        float(scale.exp()) if scale is not None else None, float(bias) if bias is not None else None,
    )  # fmt: skip


@dataclass
class ImageAnalysis:
    """One study seen by the model (from :func:`analyse`).

    Attributes:
        embedding: ``(D,)`` normalised study embedding (image, or slice-pooled volume).
        patches: ``(S, h*w, D)`` normalised region embeddings of each slice, row-major over the grid (the
            heatmaps' regions: on twice the encoder's grid with ``analyse(dense=True)``).
        regions: ``(S, n, D)`` normalised region embeddings on the encoder's own grid: what the patch-concept
            term trained, so what the findings and the per-slice scores read (shifted inputs of the dense
            grid are views the model never trained on; their maxima are not the head's evidence).
        grid: the region grid ``(h, w)``: the encoder's feature grid, or twice as fine (``analyse(dense=True)``).
        slice_weights: ``(S,)`` share of each slice in the volume embedding (sums to 1).
        pooling: ``image`` (one slice), ``attention`` (the model's slice adapter), ``max`` (a model in stage 2d:
            each embedding dimension from the slice where it is largest), ``mean`` (slices averaged) or ``3d`` (a
            native 3D encoder: the "slices" are its feature map's depth cells).
        content_box: ``(top, left, bottom, right)`` of the image inside the model's padded square input.
        input_size: side of the model's square input in pixels.
        z_mm: ``(S,)`` slice positions of the model input.
    """

    embedding: torch.Tensor
    patches: torch.Tensor
    regions: torch.Tensor
    grid: tuple[int, int]
    slice_weights: np.ndarray
    pooling: str
    content_box: tuple[int, int, int, int]
    input_size: int
    z_mm: np.ndarray

    @property
    def n_slices(self) -> int:
        """Number of slices (1 for a 2D image)."""
        return int(self.patches.shape[0])


def _shifted(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``images`` with their content moved ``dy`` rows down and ``dx`` columns right (edges replicated)."""
    height, width = images.shape[-2:]
    padded = F.pad(images, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)), mode="replicate")
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + height, left : left + width]


def _dense_feature_map(model: Any, pixels: torch.Tensor, fmap: torch.Tensor) -> torch.Tensor:
    """The feature map at twice the encoder's grid resolution, by shift-and-stitch.

    Cell ``(2i + a, 2j + b)`` is the encoder's cell ``(i, j)`` on the input shifted by a quarter of the stride
    (``+`` for ``a = 0``, ``-`` for ``a = 1``), so the cells' centres fall on the regular grid of half the stride and
    bilinear upsampling places them exactly. Works for any encoder; returns ``fmap`` when the stride is not a
    multiple of 4.
    """
    stride = pixels.shape[-1] // fmap.shape[-1]
    if stride % 4 or stride * fmap.shape[-1] != pixels.shape[-1]:
        return fmap
    quarter = stride // 4
    batch, channels, h, w = fmap.shape
    dense = fmap.new_empty(batch, channels, 2 * h, 2 * w)
    for a, dy in enumerate((quarter, -quarter)):
        for b, dx in enumerate((quarter, -quarter)):
            dense[:, :, a::2, b::2] = model.image_encoder.feature_map(_shifted(pixels, dy, dx))
    return dense


def _encode_slices(
    model: Any, pixels: torch.Tensor, dense: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Per-slice projected features ``(S, D)`` (not normalised, as slice pooling takes them), the heatmaps'
    normalised region embeddings ``(S, h*w, D)`` (dense or not), those on the encoder's own grid, and the
    heatmaps' grid, one chunk of slices at a time."""
    projected, patches, regions, grid = [], [], [], (0, 0)
    for start in range(0, pixels.shape[0], SLICE_CHUNK):
        chunk = pixels[start : start + SLICE_CHUNK]
        fmap = model.image_encoder.feature_map(chunk)
        projected.append(model.image_projection(model.image_encoder.pool_regions(fmap.flatten(2).transpose(1, 2))))
        regions.append(F.normalize(model.image_projection(fmap.flatten(2).transpose(1, 2)), dim=-1))
        if dense:
            fmap = _dense_feature_map(model, chunk, fmap)
            patches.append(F.normalize(model.image_projection(fmap.flatten(2).transpose(1, 2)), dim=-1))
        else:
            patches.append(regions[-1])
        grid = (int(fmap.shape[2]), int(fmap.shape[3]))
    return torch.cat(projected), torch.cat(patches), torch.cat(regions), grid


@torch.no_grad()
def analyse(
    model: Any, model_input: ModelInput, device: str | torch.device = "cpu", dense: bool = True
) -> ImageAnalysis:
    """Encode a prepared image or volume once for findings, heatmaps and slice relevance.

    Args:
        model: the model in eval mode (see :func:`medvl.infer.loading.load_for_inference`).
        model_input: from :func:`medvl.infer.loading.prepare_input`.
        device: where the model runs.
        dense: region embeddings on twice the encoder's grid (shift-and-stitch, four more encoder passes): a
            finer heatmap; False gives the encoder's own regions.

    The study embedding equals ``model.encode_image`` for a 2D image and ``model.encode_volume(...).embedding``
    for a volume (a model without a trained slice adapter averages its slices).
    """
    device = torch.device(device)
    if getattr(model, "volume_encoder", None) is not None and model_input.is_volume:
        return _analyse_3d(model, model_input, device)
    pixels = torch.from_numpy(model_input.pixels).to(device).unsqueeze(1)
    projected, patches, regions, grid = _encode_slices(model, pixels, dense)
    n = projected.shape[0]
    if n == 1:
        pooled, weights, pooling = projected[0], torch.ones(1), "image"
    elif getattr(model, "slice_pooling", None) is not None:
        z_mm = torch.from_numpy(model_input.z_mm).to(device)[None]
        pooled, weights = model.pool_slices(projected[None], z_mm, torch.zeros(1, n, dtype=torch.bool, device=device))
        pooling = "attention" if model.pools_slices else model.config["slice_pooling"]["first_stage"]
        pooled, weights = pooled[0], weights[0]
    else:
        pooled, weights, pooling = projected.mean(0), torch.full((n,), 1.0 / n), "mean"
    return ImageAnalysis(
        embedding=F.normalize(pooled, dim=0).float().cpu(),
        patches=patches.float().cpu(),
        regions=regions.float().cpu(),
        grid=grid,
        slice_weights=weights.float().cpu().numpy(),
        pooling=pooling,
        content_box=model_input.content_box,
        input_size=int(model_input.pixels.shape[-1]),
        z_mm=np.asarray(model_input.z_mm, dtype=np.float32),
    )


def _analyse_3d(model: Any, model_input: ModelInput, device: torch.device) -> ImageAnalysis:
    """A native 3D encoder's view of a volume: its embedding, and its feature-map cells as the regions, each depth
    cell standing in for a slice at the centre of the z range it covers (so heatmaps and slice scores map onto the
    displayed slices by position)."""
    slices, z_mm = model_input.volume_tensors()
    encoded = model.encode_volume(slices.to(device), z_mm.to(device), return_regions=True)
    cells = encoded.region_embeddings[0]
    depth, side = cells.shape[0], int(round(cells.shape[1] ** 0.5))
    edges = np.linspace(float(np.min(model_input.z_mm)), float(np.max(model_input.z_mm)), depth + 1)
    return ImageAnalysis(
        embedding=encoded.embedding[0].float().cpu(),
        patches=cells.float().cpu(),
        regions=cells.float().cpu(),
        grid=(side, cells.shape[1] // side),
        slice_weights=np.full(depth, 1.0 / depth, dtype=np.float32),
        pooling="3d",
        content_box=model_input.content_box,
        input_size=int(model_input.pixels.shape[-1]),
        z_mm=((edges[:-1] + edges[1:]) / 2).astype(np.float32),
    )


@dataclass(frozen=True)
class FindingScore:
    """Zero-shot probability of one observation with the texts that produced it.

    Attributes:
        source: ``concept`` (the patch-concept head: the best region of any slice against the trained concept,
            ``positive_prompts`` holds the concept, ``negative_prompts`` is empty) or ``prompts`` (the study
            embedding against the positive and negative prompt ensembles).
    """

    name: str
    probability: float
    positive_prompts: list[str]
    negative_prompts: list[str]
    source: str = "prompts"


def concept_probability(analysis: ImageAnalysis, bank: TextBank, observation: str) -> float:
    """The patch-concept head's probability of ``observation``: ``sigmoid(scale * best region similarity + bias)``
    over every region (the encoder's own grid) of every slice, as the concept term was trained (needs a trained
    region concept)."""
    best = float((analysis.regions @ bank.region_concepts[observation][1].float()).max())
    return float(torch.sigmoid(torch.tensor(bank.concept_scale * best + bank.concept_bias)))


VOLUME_OBSERVATIONS = ("Lung Lesion", "Pleural Effusion", "Consolidation", "Pneumothorax", *CT_OBSERVATIONS, "No Finding")
"""What a CT / MR volume is read for (a radiograph: everything but :data:`CT_OBSERVATIONS`)."""


def observations_for(bank: TextBank, is_volume: bool) -> list[str]:
    """The bank's observations that apply to a volume or to a radiograph, in label-space order."""
    if is_volume:
        return [name for name in bank.observations if name in VOLUME_OBSERVATIONS]
    return [name for name in bank.observations if name not in CT_OBSERVATIONS]


def finding_scores(analysis: ImageAnalysis, bank: TextBank, observations: Sequence[str] | None = None) -> list[FindingScore]:
    """Probability of the bank's observations (all, or those named; label-space order).

    Observations with a trained region concept are read by the patch-concept head (:func:`concept_probability`),
    the reliable zero-shot detector of models trained with that term (docs/pretraining.md), on radiographs and
    volumes alike; the others by the prompt ensembles on the study embedding.
    """
    probs = zero_shot_probabilities(analysis.embedding[None], bank.positive, bank.negative, bank.scale)[0]
    wanted = set(bank.observations if observations is None else observations)
    scores = []
    for (name, (pos, neg)), p in zip(bank.prompts.items(), probs.tolist(), strict=True):
        if name not in wanted:
            continue
        if name in bank.region_concepts and bank.concept_scale is not None:
            concept = bank.region_concepts[name][0]
            scores.append(FindingScore(name, concept_probability(analysis, bank, name), [concept], [], "concept"))
        else:
            scores.append(FindingScore(name, float(p), list(pos), list(neg)))
    return scores


@dataclass(frozen=True)
class QueryScore:
    """A free-text query scored against the study.

    Attributes:
        text: the query (the positive prompt).
        negative_prompt: the negation it is compared with.
        probability: softmax over the scaled similarities with ``text`` and ``negative_prompt``.
        similarity: cosine similarity of the study with ``text``.
    """

    text: str
    negative_prompt: str
    probability: float
    similarity: float


def negation_of(text: str) -> str:
    """The negative prompt a free-text query is compared with: ``"no <text>"``."""
    return f"no {text}"


@torch.no_grad()
def query_score(model: Any, analysis: ImageAnalysis, text: str, device: str | torch.device = "cpu") -> QueryScore:
    """Score a free-text statement against the study, as a one-prompt zero-shot pair with its negation.

    Raises:
        ValueError: the text is empty.
    """
    text = " ".join(str(text).split())
    if not text:
        raise ValueError("query: type a finding or statement to score (the text is empty)")
    negative = negation_of(text)
    emb = encode_texts(model, [text, negative], torch.device(device))
    prob = zero_shot_probabilities(analysis.embedding[None], emb[:1], emb[1:], logit_scale_of(model))[0, 0]
    return QueryScore(text, negative, float(prob), float(analysis.embedding @ emb[0]))


@torch.no_grad()
def text_direction(model: Any, text: str, device: str | torch.device = "cpu") -> torch.Tensor:
    """The joint-space direction of a free text (its embedding minus its negation's), for heatmaps."""
    emb = encode_texts(model, [text, negation_of(text)], torch.device(device))
    return emb[0] - emb[1]


def patch_scores(analysis: ImageAnalysis, direction: torch.Tensor, scale: float) -> np.ndarray:
    """``(S, h, w)`` score of every region of every slice for a target direction (scaled similarity)."""
    scores = (analysis.patches @ direction.float()) * scale
    return scores.reshape(analysis.n_slices, *analysis.grid).numpy()


def heatmap(
    analysis: ImageAnalysis,
    direction: torch.Tensor,
    scale: float,
    slice_index: int = 0,
    out_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Region scores of one slice upsampled (bilinear) onto the image, float32 in the model's logit units.

    Args:
        analysis: from :func:`analyse`.
        direction: target direction (:meth:`TextBank.direction`, :func:`text_direction`).
        scale: the similarity scale (``bank.scale``).
        slice_index: slice of the model input.
        out_shape: ``(rows, cols)`` of the displayed image (the oriented source slice); None gives the model's
            content box at input resolution.

    Returns:
        ``(rows, cols)`` scores aligned with the image (the model input's padding is cropped away).
    """
    if not 0 <= slice_index < analysis.n_slices:
        raise IndexError(f"slice {slice_index} out of range for {analysis.n_slices} slices")
    grid = torch.from_numpy(patch_scores(analysis, direction, scale)[slice_index])[None, None]
    size = analysis.input_size
    full = F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)
    top, left, bottom, right = analysis.content_box
    content = full[:, :, top:bottom, left:right]
    if out_shape is not None and tuple(out_shape) != tuple(content.shape[2:]):
        content = F.interpolate(content, size=tuple(int(v) for v in out_shape), mode="bilinear", align_corners=False)
    return content[0, 0].numpy().astype(np.float32)


def slice_scores(analysis: ImageAnalysis, direction: torch.Tensor, scale: float) -> np.ndarray:
    """``(S,)`` score of each slice for a target direction: its best region's scaled similarity, on the encoder's
    own grid (the evidence the patch-concept head reads, slice by slice)."""
    return ((analysis.regions @ direction.float()) * scale).amax(dim=1).numpy()


def top_slices(relevance: Sequence[float], k: int = 3) -> list[int]:
    """Indices of the ``k`` most relevant slices, most relevant first."""
    order = np.argsort(-np.asarray(relevance, dtype=np.float64), kind="stable")
    return [int(i) for i in order[:k]]


def nearest_slice(z_mm: np.ndarray, position_mm: float) -> int:
    """Index of the slice whose position is closest to ``position_mm`` (maps displayed to model slices)."""
    return int(np.argmin(np.abs(np.asarray(z_mm, dtype=np.float64) - position_mm)))


@dataclass(frozen=True)
class ConceptScore:
    """A lexicon concept with its scaled similarity to the study."""

    name: str
    cui: str | None
    category: str
    parent_observation: str | None
    score: float


def top_concepts(
    analysis: ImageAnalysis, bank: TextBank, k: int = 8, categories: Sequence[str] | None = None
) -> list[ConceptScore]:
    """The ``k`` lexicon concepts most similar to the study (scaled cosine similarity), best first.

    Args:
        analysis: from :func:`analyse`.
        bank: the model's text bank.
        k: how many.
        categories: keep only these lexicon categories (``finding``, ``anatomy``, ``device``, ``descriptor``).
    """
    scores = (bank.concept_embeddings @ analysis.embedding) * bank.scale
    ranked = [
        ConceptScore(c.name, c.cui, c.category, c.parent_observation, float(s))
        for c, s in zip(bank.concepts, scores.tolist(), strict=True)
        if categories is None or c.category in categories
    ]
    return sorted(ranked, key=lambda c: -c.score)[:k]


# ----------------------------------------------------------------------------------------- faithfulness
def pointing_hit(heat: np.ndarray, mask: np.ndarray, tolerance_px: float = 0.0) -> bool:
    """Pointing game: does the heatmap's maximum fall on the mask (or within ``tolerance_px`` of it)?

    Raises:
        ValueError: shapes differ or the mask is empty.
    """
    heat, mask = np.asarray(heat), np.asarray(mask, dtype=bool)
    if heat.shape != mask.shape:
        raise ValueError(f"heatmap shape {heat.shape} differs from mask shape {mask.shape}")
    if not mask.any():
        raise ValueError("the mask is empty: the pointing game needs a lesion")
    peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
    rows, cols = np.nonzero(mask)
    return bool(np.min(np.hypot(rows - peak[0], cols - peak[1])) <= tolerance_px)


def top_region(heat: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the ``fraction`` of pixels with the highest heatmap values (at least one pixel)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction {fraction} must be in (0, 1]")
    flat = np.asarray(heat).ravel()
    count = max(1, round(fraction * flat.size))
    region = np.zeros(flat.size, dtype=bool)
    region[np.argsort(-flat, kind="stable")[:count]] = True
    return region.reshape(np.shape(heat))


def delete_region(pixels: np.ndarray, region: np.ndarray, fill: float | None = None) -> np.ndarray:
    """A copy of ``(S, H, W)`` or ``(H, W)`` pixels with ``region`` (``(H, W)`` bool) set to ``fill``
    (default: the mean of the pixels outside the region, so no new edge or intensity is introduced)."""
    out = np.array(pixels, dtype=np.float32, copy=True)
    region = np.asarray(region, dtype=bool)
    if region.shape != out.shape[-2:]:
        raise ValueError(f"region shape {region.shape} differs from the image's {out.shape[-2:]}")
    value = float(out[..., ~region].mean()) if fill is None and (~region).any() else float(fill or 0.0)
    out[..., region] = value
    return out
