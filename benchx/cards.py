"""Dataset cards: one YAML file per dataset saying where its data is, how to load and prepare it, which tasks
and labels it has, and how it is cited. The schema is published in ``docs/benchx.md``.

Cards are looked up by name in ``benchx/cards/``, ``benchx/cards/public/`` and every folder of
``$BENCHX_CARDS`` (``os.pathsep``-separated); a later folder overrides an earlier one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchx.errors import CardError, UnknownNameError

CARD_DIR = Path(__file__).parent / "cards"
TASKS = ("linear_probe", "finetune_frozen", "finetune_full", "zero_shot", "retrieval", "segmentation")
TASK_TYPES = ("multilabel", "multiclass", "binary")
KINDS = ("2d", "3d")
MASK_ENCODINGS = ("bits", "labels")
DEFAULT_FRACTIONS = (0.01, 0.1, 1.0)
_REQUIRED = ("name", "description", "loader", "kind", "tasks", "task_type", "label_space", "citation", "licence")
_KNOWN = set(_REQUIRED) | {"path", "generate", "options", "segmentation", "preprocess", "split", "fractions"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class SegmentationSpec:
    """Which masks a card segments: ``classes`` maps a class name to its code in the mask file.

    ``encoding`` ``bits``: class present where ``mask & code``; ``labels``: where ``mask == code``.
    """

    mask: str
    encoding: str
    classes: dict[str, int]


@dataclass(frozen=True)
class DatasetCard:
    """A validated dataset card (see the module docstring and ``docs/benchx.md``)."""

    name: str
    description: str
    loader: str
    path: str | None
    generate: dict[str, Any] | None
    options: dict[str, Any]
    kind: str
    tasks: tuple[str, ...]
    task_type: str
    label_space: tuple[str, ...]
    segmentation: SegmentationSpec | None
    size: int
    ct_window: str
    split_rule: str
    split_hash: str | None
    fractions: tuple[float, ...]
    citation: str
    licence: str
    source: str = field(default="", compare=False)

    def data_path(self) -> Path | None:
        """The data folder with ``${VAR}`` expanded (None for generated cards); raises :class:`CardError` when a
        variable is unset."""
        if self.path is None:
            return None
        return Path(expand_vars(self.path, self.source)).expanduser()


def expand_vars(text: str, source: str = "<card>") -> str:
    """``text`` with ``${VAR}`` replaced from the environment; ``MEDVL_REALDATA`` defaults to the shared bundle."""

    def value(match: re.Match[str]) -> str:
        name = match[1]
        if os.environ.get(name):
            return os.environ[name]
        if name == "MEDVL_REALDATA":
            from medvl.realdata import realdata_root

            root = realdata_root()
            if root is not None:
                return str(root)
        raise CardError(source, "path", f"environment variable {name} is not set; export {name}=/path/to/data")

    return _VAR.sub(value, text)


def card_dirs() -> list[Path]:
    """Folders searched for cards, in increasing priority."""
    extra = [Path(p) for p in os.environ.get("BENCHX_CARDS", "").split(os.pathsep) if p]
    return [CARD_DIR, CARD_DIR / "public", *extra]


def card_files() -> dict[str, Path]:
    """Every card file by card name (file stem)."""
    found: dict[str, Path] = {}
    for folder in card_dirs():
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.yaml"))})
    return dict(sorted(found.items()))


def find_card(name: str) -> DatasetCard:
    """The card called ``name`` (or a card file path); raises :class:`UnknownNameError` listing the known ones."""
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return load_card(name)
    files = card_files()
    if name not in files:
        raise UnknownNameError("dataset", name, files)
    return load_card(files[name])


def load_card(path: str | Path) -> DatasetCard:
    """Read and validate one card file.

    Raises:
        CardError: unreadable YAML, a missing or unknown field, or a value of the wrong type or range.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CardError(path, "<file>", f"cannot read YAML ({exc})") from exc
    return parse_card(data, str(path))


def parse_card(data: Any, source: str) -> DatasetCard:
    """Validate a parsed card mapping; ``source`` names it in errors."""
    if not isinstance(data, dict):
        raise CardError(source, "<file>", "a card is a YAML mapping")
    for key in _REQUIRED:
        if key not in data:
            raise CardError(source, key, "is required")
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise CardError(source, unknown[0], f"unknown field (known: {', '.join(sorted(_KNOWN))})")
    if (data.get("path") is None) == (data.get("generate") is None):
        raise CardError(source, "path", "give exactly one of 'path' (a data folder) or 'generate' (synthetic data)")
    tasks = _str_list(data, "tasks", source)
    for task in tasks:
        if task not in TASKS:
            raise CardError(source, "tasks", f"'{task}' is not a task; choose from {', '.join(TASKS)}")
    label_space = _str_list(data, "label_space", source)
    if len(set(label_space)) != len(label_space):
        raise CardError(source, "label_space", "holds a name twice")
    preprocess = _mapping(data, "preprocess", source)
    split = _mapping(data, "split", source)
    segmentation = _segmentation(data.get("segmentation"), source)
    if "segmentation" in tasks and segmentation is None:
        raise CardError(source, "segmentation", "the 'segmentation' task needs a 'segmentation' section")
    card = DatasetCard(
        name=_text(data, "name", source),
        description=_text(data, "description", source),
        loader=_text(data, "loader", source),
        path=None if data.get("path") is None else _text(data, "path", source),
        generate=_mapping(data, "generate", source) or None,
        options=_mapping(data, "options", source),
        kind=_choice(data, "kind", KINDS, source),
        tasks=tuple(tasks),
        task_type=_choice(data, "task_type", TASK_TYPES, source),
        label_space=tuple(label_space),
        segmentation=segmentation,
        size=_int(preprocess.get("size", 128), "preprocess.size", source, 16, 1024),
        ct_window=str(preprocess.get("ct_window", "lung")),
        split_rule=str(split.get("rule", "loader")),
        split_hash=None if split.get("hash") is None else str(split["hash"]),
        fractions=_fractions(data.get("fractions", list(DEFAULT_FRACTIONS)), source),
        citation=_text(data, "citation", source),
        licence=_text(data, "licence", source),
        source=source,
    )
    duplicates = same_labels(card)
    if duplicates:
        names = duplicates[0]
        raise CardError(source, "label_space", f"{' and '.join(map(repr, names))} are one label in the "
                        f"'{card.loader}' data (set by exactly the same findings); list one of them, or it counts "
                        f"{len(names)} times in the macro metrics")
    return card


def same_labels(card: DatasetCard) -> list[tuple[str, ...]]:
    """Groups of the card's labels that are the same label of its data.

    Known for the phantom loader: labels that exactly the same planted findings set (on radiographs,
    Cardiomegaly and its parent Enlarged Cardiomediastinum, which nothing else sets; on CT, Lung Lesion and
    its parent Lung Opacity). Other loaders: none known from the card alone.
    """
    if card.loader != "phantom":
        return []
    from medvl.data.phantom.findings import CT_FINDINGS, CXR_FINDINGS
    from medvl.data.phantom.labels import LABELS_2D, LABELS_3D, ground_truth

    findings, space = (CXR_FINDINGS, LABELS_2D) if card.kind == "2d" else (CT_FINDINGS, LABELS_3D)
    truths = [(finding, ground_truth([finding], space)) for finding in findings]
    groups: dict[frozenset[str], list[str]] = {}
    for name in card.label_space:
        setters = frozenset(finding for finding, truth in truths if truth.get(name))
        if setters:
            groups.setdefault(setters, []).append(name)
    return [tuple(names) for names in groups.values() if len(names) > 1]


def _text(data: dict, key: str, source: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CardError(source, key, f"must be a non-empty string, got {value!r}")
    return value


def _str_list(data: dict, key: str, source: str) -> list[str]:
    value = data.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise CardError(source, key, f"must be a non-empty list of strings, got {value!r}")
    return value


def _mapping(data: dict, key: str, source: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CardError(source, key, f"must be a mapping, got {value!r}")
    return dict(value)


def _choice(data: dict, key: str, choices: tuple[str, ...], source: str) -> str:
    value = data.get(key)
    if value not in choices:
        raise CardError(source, key, f"{value!r} is not one of {', '.join(choices)}")
    return value


def _int(value: Any, key: str, source: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CardError(source, key, f"must be an integer in [{low}, {high}], got {value!r}")
    return value


def _fractions(value: Any, source: str) -> tuple[float, ...]:
    ok = isinstance(value, list) and value and all(isinstance(v, int | float) and 0 < v <= 1 for v in value)
    if not ok:
        raise CardError(source, "fractions", f"must be a list of numbers in (0, 1], got {value!r}")
    return tuple(sorted(float(v) for v in value))


def _segmentation(value: Any, source: str) -> SegmentationSpec | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CardError(source, "segmentation", f"must be a mapping, got {value!r}")
    classes = value.get("classes")
    if not isinstance(classes, dict) or not classes or not all(
        isinstance(k, str) and isinstance(v, int) and 0 < v < 256 for k, v in classes.items()
    ):
        raise CardError(source, "segmentation.classes", f"must map class names to mask codes 1..255, got {classes!r}")
    codes: dict[int, list[str]] = {}
    for name, code in classes.items():
        codes.setdefault(code, []).append(name)
    shared = [names for names in codes.values() if len(names) > 1]
    if shared:
        names = shared[0]
        raise CardError(source, "segmentation.classes", f"{' and '.join(map(repr, names))} have the same mask code "
                        f"{classes[names[0]]}: one mask; keep one of them")
    encoding = value.get("encoding", "labels")
    if encoding not in MASK_ENCODINGS:
        raise CardError(source, "segmentation.encoding", f"{encoding!r} is not one of {', '.join(MASK_ENCODINGS)}")
    return SegmentationSpec(str(value.get("mask", "mask")), encoding, dict(classes))
