"""WordPiece tokenizers trained on report corpora, saved and loaded in Hugging Face format (offline).

The tokenizer is BERT-style (lower-casing and accent-stripping normaliser, whitespace/punctuation
pre-tokeniser, ``[CLS] ... [SEP]`` template). Every character of :data:`DEFAULT_ALPHABET` is in the
vocabulary both as a word start and as a ``##`` continuation, so a word holding a letter the corpus never
showed is split around it instead of becoming ``[UNK]`` as a whole. Training is deterministic: the same texts
give the same vocabulary in every process.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_LATIN = "".join(chr(c) for c in range(0x00DF, 0x0250) if chr(c).islower())
_GREEK = "".join(chr(c) for c in range(0x03B1, 0x03CA))
DEFAULT_ALPHABET = "".join(
    dict.fromkeys(string.ascii_lowercase + string.digits + string.punctuation + _LATIN + _GREEK + "°±×÷µ·•–—‘’“”…→←↑↓≤≥")
)


def train_wordpiece(
    texts: Iterable[str],
    vocab_size: int = 8000,
    out_dir: str | Path | None = None,
    min_frequency: int = 2,
    lowercase: bool = True,
    alphabet: str = DEFAULT_ALPHABET,
    model_max_length: int = 512,
    show_progress: bool = False,
) -> PreTrainedTokenizerFast:
    """Train a WordPiece tokenizer on ``texts`` and optionally save it to ``out_dir``.

    Args:
        texts: report texts (any iterable; read once and held in memory while training).
        vocab_size: the largest vocabulary size, special tokens and alphabet included.
        out_dir: folder to write the Hugging Face files to (``tokenizer.json``, ``tokenizer_config.json``...).
        min_frequency: minimum count for a merged word piece.
        lowercase: lower-case and strip accents (``False`` keeps case; then upper-case letters are added to
            the alphabet too).
        alphabet: characters always in the vocabulary, as word starts and as ``##`` continuations.
        model_max_length: the maximum sequence length recorded in the tokenizer config.
        show_progress: show the trainer's progress bar.

    Raises:
        ValueError: ``vocab_size`` too small for the special tokens and alphabet, or no text to train on.
    """
    letters = alphabet if lowercase else alphabet + alphabet.upper()
    letters = "".join(dict.fromkeys(letters))
    minimum = len(SPECIAL_TOKENS) + 2 * len(letters)
    if vocab_size < minimum:
        raise ValueError(f"vocab_size={vocab_size} is too small: the special tokens and alphabet need {minimum}")
    normalizer = normalizers.BertNormalizer(clean_text=True, lowercase=lowercase, strip_accents=lowercase)
    texts = [text for text in texts if text and text.strip()]
    if not texts:
        raise ValueError("no text to train the tokenizer on")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[*SPECIAL_TOKENS, *_continuations(texts, normalizer, letters)],
        initial_alphabet=list(letters),
        show_progress=show_progress,
    )
    trained = _bert_tokenizer(models.WordPiece(unk_token="[UNK]"), normalizer)
    trained.train_from_iterator(texts, trainer=trainer)
    tokenizer = _bert_tokenizer(
        models.WordPiece(vocab=_with_alphabet(trained.get_vocab(), letters), unk_token="[UNK]"), normalizer
    )
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[(tok, tokenizer.token_to_id(tok)) for tok in ("[CLS]", "[SEP]")],
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
        do_lower_case=lowercase,
    )
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        wrapped.save_pretrained(str(out_dir))
    return wrapped


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved by :func:`train_wordpiece` (or any Hugging Face fast tokenizer folder), offline.

    Raises:
        FileNotFoundError: the folder has no ``tokenizer.json``.
    """
    path = Path(path)
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{path}: no tokenizer.json here; train one with `medvl tokenizer`")
    return PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)


def _with_alphabet(vocab: dict[str, int], letters: str) -> dict[str, int]:
    """The trained vocabulary plus any alphabet character missing as a word start or ``##`` continuation."""
    vocab = dict(vocab)
    for char in letters:
        for piece in (char, "##" + char):
            if piece not in vocab:
                vocab[piece] = len(vocab)
    return vocab


def _bert_tokenizer(model: models.WordPiece, normalizer: normalizers.BertNormalizer) -> Tokenizer:
    """A tokenizer around ``model`` with the BERT normaliser and pre-tokeniser."""
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


def _continuations(texts: list[str], normalizer: normalizers.BertNormalizer, letters: str) -> list[str]:
    """Every ``##`` continuation piece training can need, in a fixed order.

    The trainer otherwise creates these pieces while walking a hash map, so their ids (which break ties
    between equally frequent merges) change from process to process, and with them the vocabulary
    (huggingface/tokenizers#1794). Declaring them up front makes training deterministic.
    """
    seen = set(letters)
    for text in texts:
        seen.update(normalizer.normalize_str(text))
    return ["##" + char for char in sorted(seen) if not char.isspace()]
