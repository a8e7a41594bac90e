"""Label spaces: the observations a labeller reports, with their vocabulary.

The default label space is CheXpert's 14 observations (``data/chexpert14.yaml``).
:meth:`LabelSpace.chest_abdomen_ct` adds the findings of chest/abdomen CT reports that CheXpert lacks
(:data:`CT_OBSERVATIONS`, ``data/ct_findings.yaml``). A YAML file with the same
layout extends it (``extend=True``: same-named observations get the extra vocabulary, new ones are appended) or
replaces it (``extend=False``). See ``data/chexpert14.yaml`` for the fields.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from medvl.text.errors import LabelSpaceError
from medvl.text.patterns import phrase_words, validate_regex

CHEXPERT_14: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
CT_OBSERVATIONS: tuple[str, ...] = ("Liver Lesion", "Kidney Cyst", "Ascites", "Lymphadenopathy")
NO_FINDING_RULE = "no_finding"
_LIST_FIELDS = ("synonyms", "patterns", "absent", "uncertain", "exclude")
_KNOWN_FIELDS = frozenset({"name", "rule", "blocks_no_finding", *_LIST_FIELDS})
DEFAULT_YAML = "chexpert14.yaml"
CT_YAML = "ct_findings.yaml"


@dataclass(frozen=True)
class Observation:
    """One observation of a label space.

    Attributes:
        name: the observation's name (a CSV column).
        synonyms: vocabulary phrases (see :mod:`medvl.text.patterns`); the first is the preferred name in prompts.
        patterns: regexes of mentions whose status comes from negation/uncertainty cues.
        absent: regexes whose match means "absent" (status 0).
        uncertain: regexes whose match means "uncertain" (status -1).
        exclude: phrases that contain a synonym but are not a mention.
        rule: ``"no_finding"`` for the computed No Finding observation, else empty.
        blocks_no_finding: whether a present/uncertain mention rules out No Finding.
    """

    name: str
    synonyms: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    uncertain: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    rule: str = ""
    blocks_no_finding: bool = True

    def merged(self, other: Observation) -> Observation:
        """This observation with ``other``'s vocabulary appended (duplicates dropped)."""
        extra = {
            name: tuple(dict.fromkeys((*getattr(self, name), *getattr(other, name)))) for name in _LIST_FIELDS
        }
        return replace(self, **extra, rule=other.rule or self.rule, blocks_no_finding=other.blocks_no_finding)


@dataclass(frozen=True)
class LabelSpace:
    """An ordered set of observations.

    Attributes:
        observations: the observations, in output-column order.
        source: where the definition came from (file path or ``"default"``).
    """

    observations: tuple[Observation, ...]
    source: str = "default"
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {}
        for i, obs in enumerate(self.observations):
            if obs.name in index:
                raise LabelSpaceError(self.source, f"observation '{obs.name}' is defined twice")
            index[obs.name] = i
        object.__setattr__(self, "_index", index)

    @property
    def names(self) -> list[str]:
        """Observation names in order."""
        return [obs.name for obs in self.observations]

    def __getitem__(self, name: str) -> Observation:
        if name not in self._index:
            raise KeyError(f"no observation '{name}' in label space ({', '.join(self.names)})")
        return self.observations[self._index[name]]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[Observation]:
        return iter(self.observations)

    def __len__(self) -> int:
        return len(self.observations)

    @classmethod
    def default(cls) -> LabelSpace:
        """CheXpert's 14 observations with medvl's vocabulary."""
        return cls._shipped(DEFAULT_YAML, "default")

    @classmethod
    def chest_abdomen_ct(cls) -> LabelSpace:
        """CheXpert's 14 observations followed by :data:`CT_OBSERVATIONS`: the label space of chest/abdomen CT
        reports (the phantom CTs' ``LABELS_3D``)."""
        return cls.default().extended(cls._shipped(CT_YAML, "ct"))

    @classmethod
    def _shipped(cls, name: str, source: str) -> LabelSpace:
        """A label space shipped in ``medvl/text/data``."""
        text = files("medvl.text.data").joinpath(name).read_text(encoding="utf-8")
        return cls.from_mapping(yaml.safe_load(text), source=source)

    @classmethod
    def from_yaml(cls, path: str | Path, extend: bool = True) -> LabelSpace:
        """Load a label space from YAML; ``extend=True`` merges it into :meth:`default`.

        Raises:
            LabelSpaceError: the file is missing, not YAML, or an entry breaks the schema (the message names it).
        """
        path = Path(path)
        if not path.is_file():
            raise LabelSpaceError(path, "no such label-space file")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise LabelSpaceError(path, f"not valid YAML ({exc})") from exc
        loaded = cls.from_mapping(data, source=str(path))
        return cls.default().extended(loaded) if extend else loaded

    @classmethod
    def from_mapping(cls, data: Any, source: str = "<mapping>") -> LabelSpace:
        """Build a label space from the parsed YAML structure ``{"observations": [...]}``."""
        if not isinstance(data, Mapping) or not isinstance(data.get("observations"), list):
            raise LabelSpaceError(source, "expected a mapping with an 'observations' list")
        observations = tuple(_observation(entry, i, source) for i, entry in enumerate(data["observations"]))
        if not observations:
            raise LabelSpaceError(source, "'observations' is empty")
        return cls(observations, source=source)

    def extended(self, other: LabelSpace) -> LabelSpace:
        """This label space with ``other``'s observations merged in (same name) or appended (new name)."""
        observations = list(self.observations)
        for obs in other:
            if obs.name in self:
                observations[self._index[obs.name]] = self[obs.name].merged(obs)
            else:
                observations.append(obs)
        return LabelSpace(tuple(observations), source=f"{self.source}+{other.source}")


def _observation(entry: Any, i: int, source: str) -> Observation:
    """Validate one YAML entry and turn it into an :class:`Observation`."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
        raise LabelSpaceError(source, f"observations[{i}]: needs a non-empty string 'name'")
    name = entry["name"].strip()
    where = f"observation '{name}'"
    unknown = set(entry) - _KNOWN_FIELDS
    if unknown:
        raise LabelSpaceError(source, f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(_KNOWN_FIELDS)}")
    lists: dict[str, tuple[str, ...]] = {}
    for key in _LIST_FIELDS:
        values = entry.get(key) or []
        if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
            raise LabelSpaceError(source, f"{where}: '{key}' must be a list of non-empty strings")
        lists[key] = tuple(v.strip() for v in values)
    try:
        for key in ("synonyms", "exclude"):
            for phrase in lists[key]:
                phrase_words(phrase)
        for key in ("patterns", "absent", "uncertain"):
            for regex in lists[key]:
                validate_regex(regex, f"{where}: {key}")
    except ValueError as exc:
        raise LabelSpaceError(source, str(exc)) from exc
    rule = entry.get("rule") or ""
    if rule not in ("", NO_FINDING_RULE):
        raise LabelSpaceError(source, f"{where}: unknown rule '{rule}' (only '{NO_FINDING_RULE}')")
    blocks = entry.get("blocks_no_finding", True)
    if not isinstance(blocks, bool):
        raise LabelSpaceError(source, f"{where}: 'blocks_no_finding' must be true or false")
    if not rule and not (lists["synonyms"] or lists["patterns"] or lists["absent"] or lists["uncertain"]):
        raise LabelSpaceError(source, f"{where}: needs at least one of synonyms, patterns, absent, uncertain")
    return Observation(name=name, rule=rule, blocks_no_finding=blocks, **lists)
