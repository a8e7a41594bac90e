"""Dataset cards: one YAML file per dataset saying where its data is, which medvl source adapter reads it, the
benchmark's split rule, tasks and label space, how to prepare images, and how it is cited. The schema is
published in ``docs/benchx.md``.

Cards are looked up by name in ``benchx/cards/``, ``benchx/cards/public/`` and every folder of
``$BENCHX_CARDS`` (``os.pathsep``-separated); a later folder overrides an earlier one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from benchx.errors import CardError, UnknownNameError, card_error
from medvl.config import build, check_non_empty, check_range, field_error

CARD_DIR = Path(__file__).parent / "cards"
TASKS = ("linear_probe", "finetune_frozen", "finetune_full", "zero_shot", "retrieval", "segmentation")
DEFAULT_FRACTIONS = (0.01, 0.1, 1.0)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class SegmentationSpec:
    """Which masks a card segments: ``classes`` maps a class name to its code in the mask file.

    ``encoding`` ``bits``: class present where ``mask & code``; ``labels``: where ``mask == code``.
    """

    config_noun: ClassVar[str] = "field"
    mask: str = "mask"
    encoding: Literal["bits", "labels"] = "labels"
    classes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        classes = self.classes
        if not classes or not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                                  and 0 < v < 256 for k, v in classes.items()):  # fmt: skip
            raise field_error("classes", f"must map class names to mask codes 1..255, got {classes!r}")
        codes: dict[int, list[str]] = {}
        for name, code in classes.items():
            codes.setdefault(code, []).append(name)
        shared = [names for names in codes.values() if len(names) > 1]
        if shared:
            names = shared[0]
            raise field_error("classes", f"{' and '.join(map(repr, names))} have the same mask code "
                              f"{classes[names[0]]}: one mask; keep one of them")


@dataclass(frozen=True)
class Preprocess:
    """How a card's images are prepared: side in pixels and CT window."""

    config_noun: ClassVar[str] = "field"
    size: int = 128
    ct_window: str = "lung"

    def __post_init__(self) -> None:
        check_range("size", self.size, 16, 1024)


@dataclass(frozen=True)
class CardFile:
    """The fields of a card file (``docs/benchx.md``), checked; :func:`parse_card` makes the DatasetCard."""

    config_noun: ClassVar[str] = "field"
    name: str
    description: str
    source: str
    kind: Literal["2d", "3d"]
    tasks: tuple[str, ...]
    task_type: Literal["multilabel", "multiclass", "binary"]
    label_space: tuple[str, ...]
    citation: str
    licence: str
    path: str | None = None
    generate: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    segmentation: SegmentationSpec | None = None
    preprocess: Preprocess = field(default_factory=Preprocess)
    split: dict[str, Any] = field(default_factory=dict)
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS

    def __post_init__(self) -> None:
        from benchx.split_rules import SPLIT_RULES  # both import pandas: not at `benchx --help`
        from medvl.data.adapters import ADAPTERS

        for key in ("name", "description", "source", "citation", "licence", "path"):
            check_non_empty(key, getattr(self, key))
        if self.source not in ADAPTERS:
            raise field_error("source", f"unknown source {self.source!r}; medvl's sources: "
                                        f"{', '.join(sorted(ADAPTERS))}")
        if (self.path is None) == (self.generate is None):
            raise field_error("path", "give exactly one of 'path' (a data folder) or 'generate' (synthetic data)")
        for key in ("tasks", "label_space"):
            names = getattr(self, key)
            if not names or not all(names):
                raise field_error(key, f"must be a non-empty list of strings, got {list(names)!r}")
        for task in self.tasks:
            if task not in TASKS:
                raise field_error("tasks", f"'{task}' is not a task; choose from {', '.join(TASKS)}")
        if len(set(self.label_space)) != len(self.label_space):
            raise field_error("label_space", "holds a name twice")
        if "segmentation" in self.tasks and self.segmentation is None:
            raise field_error("segmentation", "the 'segmentation' task needs a 'segmentation' section")
        rule = str(self.split.get("rule", "source"))
        if rule not in SPLIT_RULES:
            raise field_error("split.rule", f"{rule!r} is not one of {', '.join(SPLIT_RULES)}")
        unknown = sorted(set(self.split) - {"rule", "hash", *SPLIT_RULES[rule].options})
        if unknown:
            known = ", ".join(SPLIT_RULES[rule].options) or "none"
            raise field_error(f"split.{unknown[0]}", f"not an option of rule {rule!r} (its options: {known})")
        if not self.fractions or not all(0 < f <= 1 for f in self.fractions):
            raise field_error("fractions", f"must be a list of numbers in (0, 1], got {list(self.fractions)!r}")


@dataclass(frozen=True)
class DatasetCard:
    """A validated dataset card (see the module docstring and ``docs/benchx.md``)."""

    name: str
    description: str
    source: str
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
    split_options: dict[str, Any]
    split_hash: str | None
    fractions: tuple[float, ...]
    citation: str
    licence: str
    file: str = field(default="", compare=False)

    def data_path(self) -> Path | None:
        """The data folder with ``${VAR}`` expanded (None for generated cards); raises :class:`CardError` when a
        variable is unset."""
        if self.path is None:
            return None
        return Path(expand_vars(self.path, self.file)).expanduser()


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
    spec = build(CardFile, data, error=card_error(source))
    card = DatasetCard(
        name=spec.name,
        description=spec.description,
        source=spec.source,
        path=spec.path,
        generate=spec.generate or None,
        options=spec.options,
        kind=spec.kind,
        tasks=spec.tasks,
        task_type=spec.task_type,
        label_space=spec.label_space,
        segmentation=spec.segmentation,
        size=spec.preprocess.size,
        ct_window=spec.preprocess.ct_window,
        split_rule=str(spec.split.get("rule", "source")),
        split_options={k: v for k, v in spec.split.items() if k not in ("rule", "hash")},
        split_hash=None if spec.split.get("hash") is None else str(spec.split["hash"]),
        fractions=tuple(sorted(spec.fractions)),
        citation=spec.citation,
        licence=spec.licence,
        file=source,
    )
    duplicates = same_labels(card)
    if duplicates:
        names = duplicates[0]
        raise CardError(source, "label_space", f"{' and '.join(map(repr, names))} are one label in the "
                        f"'{card.source}' data (set by exactly the same findings); list one of them, or it counts "
                        f"{len(names)} times in the macro metrics")
    return card


def same_labels(card: DatasetCard) -> list[tuple[str, ...]]:
    """Groups of the card's labels that are the same label of its data.

    Known for the phantom source: labels that exactly the same planted findings set (on radiographs,
    Cardiomegaly and its parent Enlarged Cardiomediastinum, which nothing else sets; on CT, Lung Lesion and
    its parent Lung Opacity). Other sources: none known from the card alone.
    """
    if card.source != "phantom":
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
