r"""Contrastive image-text losses, and their combination by config weights.

Notation: ``v_i`` image and ``u_i`` text embeddings of pair ``i`` in a batch of ``N``, compared by cosine
similarity ``<v, u>`` (every loss L2-normalises its inputs). Each contrastive loss is a mean over rows ``i``,
so it can be evaluated on a subset ``rows`` of the queries against all keys: that is how a rank computes
its share with ``local_loss`` (see :mod:`medvl.distributed_gather`). Temperatures given as ``logit_scale``
are logarithms (the learnable parameters), as in CLIP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medvl import distributed_gather
from medvl.models.config import resolve_loss_config

Rows = slice | None
CONCEPT_LOG_SCALE = math.log(10.0)
# The terms that need no report embeddings (concept names and statements are encoded by the trainer itself);
# every other term compares each image with the reports of the batch.
IMAGE_ONLY_TERMS = ("concept", "concept_spread", "polarity")


def _check_pairs(img: torch.Tensor, txt: torch.Tensor) -> None:
    if img.ndim != 2 or img.shape != txt.shape:
        raise ValueError(f"image {tuple(img.shape)} and text {tuple(txt.shape)} embeddings must both be (N, D)")


def _scale(logit_scale: torch.Tensor | float, max_scale: float) -> torch.Tensor:
    return torch.as_tensor(logit_scale).clamp(max=math.log(max_scale)).exp()


def _bidirectional(logits_i2t: torch.Tensor, logits_t2i: torch.Tensor, targets: torch.Tensor, lam: float) -> torch.Tensor:
    """``lam * CE(image->text) + (1 - lam) * CE(text->image)``, targets a class index or a distribution."""
    return lam * F.cross_entropy(logits_i2t, targets) + (1 - lam) * F.cross_entropy(logits_t2i, targets)


def _cosine_logits(img: torch.Tensor, txt: torch.Tensor, rows: Rows) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Similarities of the query rows to every key, both ways, and the row indices."""
    _check_pairs(img, txt)
    img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    index = torch.arange(img.shape[0], device=img.device)[rows if rows is not None else slice(None)]
    return img[index] @ txt.T, txt[index] @ img.T, index


def convirt_loss(img: torch.Tensor, txt: torch.Tensor, tau: float = 0.1, lam: float = 0.75, rows: Rows = None) -> torch.Tensor:
    r"""ConVIRT's bidirectional InfoNCE with a fixed temperature.

    .. math::
        \ell^{v\to u}_i = -\log \frac{e^{\langle v_i,u_i\rangle/\tau}}{\sum_k e^{\langle v_i,u_k\rangle/\tau}},\quad
        \ell^{u\to v}_i = -\log \frac{e^{\langle u_i,v_i\rangle/\tau}}{\sum_k e^{\langle u_i,v_k\rangle/\tau}},\quad
        L = \frac{1}{N}\sum_i \lambda\,\ell^{v\to u}_i + (1-\lambda)\,\ell^{u\to v}_i

    Args:
        img, txt: ``(N, D)`` paired embeddings.
        tau: temperature (0.1 in ConVIRT).
        lam: weight of the image-to-text direction (0.75 in ConVIRT).
        rows: evaluate only these query rows (a rank's share); None = all.
    """
    sim_i2t, sim_t2i, index = _cosine_logits(img, txt, rows)
    return _bidirectional(sim_i2t / tau, sim_t2i / tau, index, lam)


def polarity_loss(
    img: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor | float
) -> torch.Tensor:
    r"""Negated statements as hard negatives: for every finding, each image chooses between a statement of it and
    its negation ("pleural effusion is seen" / "pleural fluid is not seen"), the two-way softmax zero-shot
    classification reads at inference. Each finding weighs its present and its absent images equally (half each,
    when the batch has both), so a rare finding is not learnt as "always absent"; findings are then averaged.

    .. math::
        L = \frac{1}{|F|}\sum_{f \in F} \sum_{c} \frac{1}{|C_f|\,|K_{fc}|}\sum_{i \in K_{fc}}
            -\log \operatorname{softmax}\big(s\langle v_i,p_{if}\rangle,\; s\langle v_i,n_{if}\rangle\big)_{c}

    with :math:`K_{fc}` the images whose target for finding :math:`f` is :math:`c` and :math:`C_f` the classes
    the batch has for it.

    Args:
        img: ``(B, D)`` image embeddings.
        positive, negative: ``(B, F, D)`` embeddings of each image's statement of each finding and its negation.
        targets: ``(B, F)`` 0 when the finding is present, 1 when absent, -100 to leave it out.
        scale: the similarity scale (``1 / tau`` or the learnt logit scale).
    """
    img = F.normalize(img, dim=-1)[:, None]
    positive, negative = F.normalize(positive, dim=-1), F.normalize(negative, dim=-1)
    logits = torch.stack([(img * positive).sum(-1), (img * negative).sum(-1)], dim=-1) * scale
    known = targets != -100
    if not known.any():
        return logits.sum() * 0.0
    nll = F.cross_entropy(logits.float().flatten(0, 1), targets.clamp(min=0).flatten(), reduction="none")
    weights = torch.zeros_like(nll.view_as(targets))
    for cls in (0, 1):
        members = (targets == cls).float()
        weights = weights + members / members.sum(0).clamp(min=1.0)
    classes = (targets == 0).any(0).float() + (targets == 1).any(0).float()
    per_finding = (nll.view_as(targets) * weights).sum(0) / classes.clamp(min=1.0)
    return per_finding[classes > 0].mean()


def clip_loss(
    img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor | float, max_scale: float = 100.0, rows: Rows = None
) -> torch.Tensor:
    r"""CLIP's symmetric InfoNCE with a learnable temperature.

    With :math:`s = \exp(\min(\text{logit\_scale}, \log s_{max}))` (CLIP caps the scale at 100):

    .. math::
        L = \frac{1}{2N}\sum_i \Big[-\log \frac{e^{s\langle v_i,u_i\rangle}}{\sum_k e^{s\langle v_i,u_k\rangle}}
            -\log \frac{e^{s\langle u_i,v_i\rangle}}{\sum_k e^{s\langle u_i,v_k\rangle}}\Big]
    """
    sim_i2t, sim_t2i, index = _cosine_logits(img, txt, rows)
    scale = _scale(logit_scale, max_scale)
    return _bidirectional(scale * sim_i2t, scale * sim_t2i, index, 0.5)


def siglip_loss(
    img: torch.Tensor,
    txt: torch.Tensor,
    logit_scale: torch.Tensor | float,
    logit_bias: torch.Tensor | float,
    max_scale: float = 100.0,
    rows: Rows = None,
) -> torch.Tensor:
    r"""SigLIP's pairwise sigmoid loss: every image-text pair is an independent binary decision.

    .. math::
        L = -\frac{1}{N}\sum_i\sum_j \log \sigma\big(z_{ij}\,(s\langle v_i,u_j\rangle + b)\big),\quad
        z_{ij} = 1 \text{ if } i=j \text{ else } -1,\quad s = \exp(\text{logit\_scale})

    (SigLIP initialises ``s = 10``, ``b = -10``.)
    """
    sim_i2t, _, index = _cosine_logits(img, txt, rows)
    logits = _scale(logit_scale, max_scale) * sim_i2t + torch.as_tensor(logit_bias)
    signs = 2 * F.one_hot(index, img.shape[0]).to(logits.dtype) - 1
    return -F.logsigmoid(signs * logits).sum() / len(index)


def label_similarity_targets(
    labels: torch.Tensor, target_tau: float = 0.1, uncertain_as: float = 1.0, rows: Rows = None
) -> torch.Tensor:
    r"""Soft targets from label agreement (MedCLIP): studies with the same findings are not negatives.

    ``labels`` is ``(N, P)`` with 1 (present), 0 (absent), -1 (uncertain, counted as ``uncertain_as``) and
    NaN (not mentioned, counted as 0). A "no finding" column (1 when nothing is positive) is appended so
    that two normal studies match. With :math:`s_{ij}` the cosine similarity of the label vectors,

    .. math:: T_{ij} = \frac{e^{s_{ij}/\tau_t}}{\sum_k e^{s_{ik}/\tau_t}}

    Identical label vectors get equal target mass. A row whose labels are all NaN (unknown study) gets the
    identity target, and unknown studies count as dissimilar (``s = 0``) to every other study.
    """
    if labels.ndim != 2:
        raise ValueError(f"labels: expected (N, P), got {tuple(labels.shape)}")
    labels = labels if labels.is_floating_point() else labels.float()
    known = ~torch.isnan(labels).all(dim=1)
    values = torch.nan_to_num(labels, nan=0.0)
    values = torch.where(values < 0, torch.full_like(values, uncertain_as), values)
    no_finding = (values <= 0).all(dim=1, keepdim=True).to(values.dtype)
    vectors = F.normalize(torch.cat([values, no_finding], dim=1), dim=1)
    sim = (vectors @ vectors.T) * (known[:, None] & known[None, :])
    index = torch.arange(labels.shape[0], device=labels.device)[rows if rows is not None else slice(None)]
    targets = (sim[index] / target_tau).softmax(dim=1)
    identity = F.one_hot(index, labels.shape[0]).to(targets.dtype)
    return torch.where(known[index, None], targets, identity)


def soft_target_loss(
    img: torch.Tensor,
    txt: torch.Tensor,
    labels: torch.Tensor,
    tau: float = 0.1,
    target_tau: float = 0.1,
    uncertain_as: float = 1.0,
    lam: float = 0.5,
    rows: Rows = None,
) -> torch.Tensor:
    r"""Bidirectional cross-entropy against label-similarity targets :math:`T` (see :func:`label_similarity_targets`).

    .. math::
        L = \frac{1}{N}\sum_i \Big[\lambda \sum_j -T_{ij}\log\operatorname{softmax}_j\frac{\langle v_i,u_j\rangle}{\tau}
            + (1-\lambda) \sum_j -T_{ij}\log\operatorname{softmax}_j\frac{\langle u_i,v_j\rangle}{\tau}\Big]

    :math:`T` is symmetric before row normalisation, so both directions share it.
    """
    if labels.shape[0] != img.shape[0]:
        raise ValueError(f"labels have {labels.shape[0]} rows for {img.shape[0]} embeddings")
    sim_i2t, sim_t2i, _ = _cosine_logits(img, txt, rows)
    targets = label_similarity_targets(labels.to(img.device), target_tau, uncertain_as, rows).to(sim_i2t.dtype)
    return _bidirectional(sim_i2t / tau, sim_t2i / tau, targets, lam)


def concept_alignment_loss(
    patch_emb: torch.Tensor,
    concept_emb: torch.Tensor,
    concept_targets: torch.Tensor,
    logit_scale: torch.Tensor | float = CONCEPT_LOG_SCALE,
    logit_bias: torch.Tensor | float = -5.0,
    patch_mask: torch.Tensor | None = None,
    key_slices: torch.Tensor | None = None,
    slice_regions: int = 0,
    slice_negatives: bool = False,
    pool_temperature: float = 0.0,
) -> torch.Tensor:
    r"""ConceptCLIP-style patch-concept alignment: does the image show concept ``c`` somewhere?

    .. math::
        m_{bc} = \max_n \langle p_{bn}, c_c\rangle,\quad
        L = \frac{1}{BC}\sum_{(b,c)\in M} \mathrm{BCE}\big(\sigma(s\,m_{bc} + b_0),\ y_{bc}\big),\quad s = e^{\text{logit\_scale}}

    Pairs outside :math:`M` add nothing but still count in :math:`BC`, so the loss is a mean over images and
    per-rank values average to the global one.

    Args:
        patch_emb: ``(B, N, D)`` region embeddings.
        concept_emb: ``(C, D)`` concept embeddings (e.g. the text encoder on the lexicon's concept names).
        concept_targets: ``(B, C)``: 1 when the report mentions the concept as present, 0 when not; NaN or
            -1 (uncertain) entries form no pair of ``M`` and are ignored.
        patch_mask: ``(B, N)`` bool, True on regions to leave out (a volume's padded slices), or None. A
            volume's regions are all its slices' regions: the best-matching region may lie on any slice
            (multiple-instance learning over slices).
        key_slices: ``(B, C)`` long, or None: where the report cites a key image for an asserted concept, its
            slice (on the slice axis of ``patch_emb``; -1 none). Each adds a pair of its own: the best region of
            that slice must match the concept (target 1), besides the volume's pair.
        slice_regions: regions per slice in ``patch_emb`` (slice-major), needed with ``key_slices`` and
            ``slice_negatives``.
        slice_negatives: each target-0 pair of a volume adds a pair of its own: the mean over its real slices of
            each slice's best region against 0. Every slice of a volume without the finding then teaches what the
            finding is not (its lookalikes anywhere in the volume), not only the slice that scores highest; the
            volume's pair stays, so what its best region learns is the same for positives and negatives.
        pool_temperature: 0 pools an image's regions by their maximum :math:`m_{bc}`; ``t > 0`` by the smooth
            maximum :math:`t \log\sum_n e^{\langle p_{bn}, c_c\rangle / t}` (at most :math:`t \log N` above
            it), whose gradient reaches every region near the best: with the hard maximum, a finding whose best
            region sits on a slice type every volume has (pelvis for effusion) is pushed up on positives and down
            on negatives alike and never moves to the slices that show it.
    """
    if patch_emb.ndim != 3 or concept_emb.ndim != 2 or patch_emb.shape[-1] != concept_emb.shape[-1]:
        raise ValueError(f"patch_emb {tuple(patch_emb.shape)} must be (B, N, D) and concept_emb {tuple(concept_emb.shape)} (C, D)")
    if tuple(concept_targets.shape) != (patch_emb.shape[0], concept_emb.shape[0]):
        raise ValueError(f"concept_targets: expected {(patch_emb.shape[0], concept_emb.shape[0])}, got {tuple(concept_targets.shape)}")
    sims = torch.einsum("bnd,cd->bnc", F.normalize(patch_emb, dim=-1), F.normalize(concept_emb, dim=-1))
    if patch_mask is not None:
        sims = sims.masked_fill(patch_mask.unsqueeze(-1), -2.0)  # below any cosine: never the maximum
    scale, bias = torch.as_tensor(logit_scale).exp(), torch.as_tensor(logit_bias)
    pooled = sims.amax(dim=1) if pool_temperature <= 0 else pool_temperature * torch.logsumexp(sims / pool_temperature, dim=1)
    logits = scale * pooled + bias
    targets = concept_targets.to(logits.dtype)
    valid = (targets == 0) | (targets == 1)
    pair_losses = F.binary_cross_entropy_with_logits(logits, torch.where(valid, targets, 0.0), reduction="none")
    if key_slices is not None or slice_negatives:
        if slice_regions <= 0 or patch_emb.shape[1] % slice_regions:
            raise ValueError(f"key_slices and slice_negatives need slice_regions dividing the {patch_emb.shape[1]} regions, got {slice_regions}")
        per_slice = sims.reshape(sims.shape[0], -1, slice_regions, sims.shape[-1]).amax(dim=2)  # (B, S, C)
    if slice_negatives:
        real = torch.ones(per_slice.shape[:2], dtype=torch.bool, device=per_slice.device) if patch_mask is None else (
            ~patch_mask.reshape(per_slice.shape[0], -1, slice_regions)[:, :, 0])  # fmt: skip
        slice_losses = F.binary_cross_entropy_with_logits(scale * per_slice + bias, torch.zeros_like(per_slice), reduction="none")
        mean_negative = (slice_losses * real.unsqueeze(-1)).sum(1) / real.sum(1, keepdim=True).clamp(min=1)
        pair_losses = pair_losses + torch.where(targets == 0, mean_negative, 0.0)
    total = torch.where(valid, pair_losses, 0.0).sum()
    if key_slices is not None:
        keyed = scale * per_slice.gather(1, key_slices.clamp(min=0).unsqueeze(1)).squeeze(1) + bias
        key_losses = F.binary_cross_entropy_with_logits(keyed, torch.ones_like(keyed), reduction="none")
        total = total + torch.where(key_slices >= 0, key_losses, 0.0).sum()
    return total / targets.numel()


def concept_spread_loss(concept_emb: torch.Tensor) -> torch.Tensor:
    r"""Keeps different concepts' text embeddings apart: the mean over ordered pairs :math:`i \ne j` of
    :math:`\max(0, \cos(c_i, c_j))^2`.

    A text tower trained from scratch starts with every name at nearly the same embedding (cosine 0.93-0.97
    for the six CT finding names with the character tokenizer), and the patch-concept term alone can leave them
    there: concepts that share one direction cannot be told apart, and they sit at a shared prior.
    """
    if concept_emb.shape[0] < 2:
        return concept_emb.sum() * 0.0
    unit = F.normalize(concept_emb, dim=-1)
    cos = unit @ unit.T
    off_diagonal = ~torch.eye(cos.shape[0], dtype=torch.bool, device=cos.device)
    return cos[off_diagonal].clamp(min=0).pow(2).mean()


@dataclass
class LossOutput:
    """The weighted total and each term's (unweighted) value."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


class ContrastiveLoss(nn.Module):
    """Weighted sum of the losses above, with features gathered across ranks when running distributed.

    Args:
        config: a ``loss`` config section (weights per term plus temperatures; see :class:`medvl.models.config.LossConfig`).
        local_loss: each rank scores only its own rows against all gathered keys (less memory); needs
            ``gather_with_grad``.
        gather_with_grad: gather with autograd (gradients reach the rank that produced a feature).

    World-size factor: under DDP, which averages gradients over ranks, every allowed combination yields the
    single-process full-batch gradient. With ``gather_with_grad`` that holds as is; without it, each rank
    only differentiates through its own features, so the gradient reaching them is multiplied by the world
    size (values are unchanged). The concept term is per image and needs no gathering.
    With ``local_loss`` the returned values are this rank's share; average them over ranks to report.
    """

    def __init__(self, config: Mapping[str, Any] | None = None, *, local_loss: bool = False, gather_with_grad: bool = True) -> None:
        super().__init__()
        self.config = resolve_loss_config(config, "loss")
        self.weights = {name: float(w) for name, w in self.config["weights"].items() if w > 0}
        if local_loss and not gather_with_grad:
            raise ValueError("local_loss needs gather_with_grad: without it the gradients miss other ranks' terms")
        self.local_loss, self.gather_with_grad = local_loss, gather_with_grad
        self.sizes_checked = False  # ranks' batch sizes are compared once (each check is a host sync)

    @property
    def needs_text(self) -> bool:
        """Whether a term compares images with their reports' embeddings (else the reports need no encoding)."""
        return any(name not in IMAGE_ONLY_TERMS for name in self.weights)

    def _pair_terms(self, outputs: Mapping[str, Any], labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The image-report terms, over features gathered from every rank."""
        cfg = self.config
        image, text = outputs["image"], _need(outputs, "text")
        world = distributed_gather.world_size()
        if world > 1 and not self.gather_with_grad:
            image, text = distributed_gather.scale_gradient(image, world), distributed_gather.scale_gradient(text, world)
        gathered = distributed_gather.gather_features(
            image, text, local_loss=self.local_loss, gather_with_grad=self.gather_with_grad, check_sizes=not self.sizes_checked
        )
        self.sizes_checked = world > 1
        img, txt, rows = gathered.image, gathered.text, gathered.rows
        terms: dict[str, torch.Tensor] = {}
        if "convirt" in self.weights:
            terms["convirt"] = convirt_loss(img, txt, cfg["tau"], cfg["lam"], rows)
        if "clip" in self.weights:
            terms["clip"] = clip_loss(img, txt, _need(outputs, "logit_scale"), cfg["max_logit_scale"], rows)
        if "siglip" in self.weights:
            terms["siglip"] = siglip_loss(
                img, txt, _need(outputs, "logit_scale"), _need(outputs, "logit_bias"), cfg["max_logit_scale"], rows
            )
        if "soft_target" in self.weights:
            if labels is None:
                raise ValueError("the soft_target term needs labels (B, P)")
            all_labels = distributed_gather.gather_tensor(labels.to(outputs["image"].device, outputs["image"].dtype), check_sizes=False)
            terms["soft_target"] = soft_target_loss(
                img, txt, all_labels, cfg["soft_target_tau"], cfg["target_tau"], cfg["uncertain_as"], rows=rows
            )
        return terms

    def forward(
        self,
        outputs: Mapping[str, Any],
        labels: torch.Tensor | None = None,
        concept_emb: torch.Tensor | None = None,
        concept_targets: torch.Tensor | None = None,
        polarity: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
        key_slices: torch.Tensor | None = None,
    ) -> LossOutput:
        """Loss of one step from the model's ``forward`` outputs.

        Args:
            outputs: ``image``, ``text`` and the logit parameters; ``patches`` for the concept term.
            labels: ``(B, P)`` study labels for ``soft_target``.
            concept_emb, concept_targets: for ``concept`` (see :func:`concept_alignment_loss`).
            key_slices: for ``concept`` on volumes whose reports cite key images (ignored without
                ``outputs['slice_regions']``, e.g. for a 3D encoder's cells, which are no slices).
            polarity: ``(positive, negative, targets)`` for ``polarity`` (see :func:`polarity_loss`).
        """
        terms = self._pair_terms(outputs, labels) if self.needs_text else {}
        if "concept" in self.weights:
            if concept_emb is None or concept_targets is None or "patches" not in outputs:
                raise ValueError("the concept term needs outputs['patches'] (forward(..., return_patches=True)), concept_emb and concept_targets")
            terms["concept"] = concept_alignment_loss(
                outputs["patches"],
                concept_emb,
                concept_targets,
                _need(outputs, "concept_logit_scale"),
                _need(outputs, "concept_logit_bias"),
                outputs.get("patch_mask"),
                key_slices if outputs.get("slice_regions") else None,
                outputs.get("slice_regions") or 0,
                self.config["concept_negatives"] == "slices" and bool(outputs.get("slice_regions")),
                self.config["concept_pool_temperature"],
            )
        if "concept_spread" in self.weights:
            if concept_emb is None:
                raise ValueError("the concept_spread term needs concept_emb")
            terms["concept_spread"] = concept_spread_loss(concept_emb)
        if "polarity" in self.weights:
            cfg = self.config
            if polarity is None:
                raise ValueError("the polarity term needs (positive, negative, targets) statement embeddings")
            scale = _scale(outputs["logit_scale"], cfg["max_logit_scale"]) if outputs.get("logit_scale") is not None else 1.0 / cfg["tau"]
            terms["polarity"] = polarity_loss(outputs["image"], *polarity, scale)
        total = sum(self.weights[name] * value for name, value in terms.items())
        return LossOutput(total, {name: value.detach() for name, value in terms.items()})


def _need(outputs: Mapping[str, Any], key: str) -> torch.Tensor:
    value = outputs.get(key)
    if value is None:
        raise ValueError(f"outputs['{key}'] is missing: build the model with this loss weighted in its config")
    return value
