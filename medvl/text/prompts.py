"""Positive / negative prompt pairs per observation for zero-shot classification, with prompt ensembles.

Terms come from the lexicon (the preferred names of concepts whose parent is the observation) and the label
space (the observation's noun-phrase synonyms); each term is put into a few positive templates
("there is {term}") and negative templates ("no {term}"). A zero-shot classifier compares an image with the
mean text embedding of each side. ``No Finding`` gets fixed normal / abnormal statements.
"""

from __future__ import annotations

from dataclasses import dataclass

from medvl.text.labels import CT_OBSERVATIONS, NO_FINDING_RULE, LabelSpace, Observation
from medvl.text.lexicon import Lexicon

POSITIVE_TEMPLATES = ("{term}", "there is {term}", "findings consistent with {term}", "chest radiograph showing {term}")
NEGATIVE_TEMPLATES = ("no {term}", "there is no {term}", "no evidence of {term}", "chest radiograph without {term}")
NO_FINDING_POSITIVE = (
    "no acute cardiopulmonary abnormality",
    "normal chest radiograph",
    "the heart and lungs are normal",
    "no acute disease",
)
NO_FINDING_NEGATIVE = (
    "acute cardiopulmonary abnormality",
    "abnormal chest radiograph",
    "the chest radiograph shows an abnormality",
    "there is acute disease",
)
_ADJECTIVE_ENDINGS = ("ed", "ive", "ous", "ic", "al")
DEFAULT_PROMPTS = "default"
PROMPT_SETS = (DEFAULT_PROMPTS, "phantom")
"""Named prompt sets: ``default`` (ensembles for CheXpert-14 and the chest/abdomen CT findings; the set a model's
calibration is fitted with) and ``phantom`` (the phantom reports' own pairs)."""


PHANTOM_PROMPTS: dict[str, tuple[str, str]] = {
    "Cardiomegaly": ("Cardiomegaly is present.", "There is no cardiomegaly."),
    "Enlarged Cardiomediastinum": (
        "An enlarged cardiomediastinal silhouette is present.",
        "There is no enlargement of the cardiomediastinal silhouette.",
    ),
    "Lung Opacity": ("A lung opacity is present.", "There is no lung opacity."),
    "Lung Lesion": ("A lung nodule is present.", "There is no lung nodule."),
    "Consolidation": ("Consolidation is present.", "There is no consolidation."),
    "Pneumothorax": ("Pneumothorax is present.", "There is no pneumothorax."),
    "Pleural Effusion": ("Pleural effusion is present.", "There is no pleural effusion."),
    CT_OBSERVATIONS[0]: ("A liver lesion is present.", "There is no liver lesion."),
    CT_OBSERVATIONS[1]: ("A kidney cyst is present.", "There is no kidney cyst."),
    CT_OBSERVATIONS[2]: ("Ascites is present.", "There is no ascites."),
    CT_OBSERVATIONS[3]: ("An enlarged lymph node is present.", "There are no enlarged lymph nodes."),
    "No Finding": ("No acute abnormality is present.", "An acute abnormality is present."),
}
"""The phantom reports' own zero-shot pairs, observation -> (positive prompt, negative prompt). None of them
occurs, even inside a longer sentence, in the phantom generator's ``train`` phrasing pool
(``tests/test_phantom_reports.py`` checks every rendered training sentence), so a model that classifies with
them has learnt the concept rather than a memorised training sentence."""


@dataclass(frozen=True)
class PromptPair:
    """The prompt ensembles of one observation: texts asserting it (positive) and denying it (negative)."""

    observation: str
    positive: list[str]
    negative: list[str]


def build_prompts(
    label_space: LabelSpace | None = None,
    lexicon: Lexicon | None = None,
    max_terms: int = 4,
    positive_templates: tuple[str, ...] = POSITIVE_TEMPLATES,
    negative_templates: tuple[str, ...] = NEGATIVE_TEMPLATES,
) -> dict[str, PromptPair]:
    """Prompt pairs for every observation of ``label_space`` (default: CheXpert 14), in label-space order.

    Args:
        label_space: observations and synonyms; :meth:`LabelSpace.default` when None.
        lexicon: concepts whose names add terms; :meth:`Lexicon.default` when None.
        max_terms: how many terms per observation go into the ensemble.
        positive_templates, negative_templates: format strings with a ``{term}`` field.
    """
    label_space = label_space or LabelSpace.default()
    lexicon = lexicon if lexicon is not None else Lexicon.default()
    prompts = {}
    for obs in label_space:
        if obs.rule == NO_FINDING_RULE:
            prompts[obs.name] = PromptPair(obs.name, list(NO_FINDING_POSITIVE), list(NO_FINDING_NEGATIVE))
            continue
        terms = prompt_terms(obs, lexicon)[:max_terms]
        prompts[obs.name] = PromptPair(
            obs.name,
            [t.format(term=term) for term in terms for t in positive_templates],
            [t.format(term=term) for term in terms for t in negative_templates],
        )
    return prompts


def prompt_terms(observation: Observation, lexicon: Lexicon) -> list[str]:
    """Noun phrases naming the observation: preferred names of the lexicon concepts below it, then the
    observation's synonyms, then the concepts' synonyms.

    Observation names are not used as such: several are category labels ("Pleural Other", "Support Devices")
    rather than phrases a report would contain.
    """
    children = lexicon.children(observation.name)
    candidates = [c.name for c in children] + list(observation.synonyms)
    candidates += [synonym for c in children for synonym in c.synonyms]
    terms = []
    for term in candidates:
        term = " ".join(term.lower().split())
        if _usable(term) and term not in terms:
            terms.append(term)
    return terms


def _usable(term: str) -> bool:
    """A readable noun phrase: no prefix wildcard, not an abbreviation, not a lone adjective."""
    if "*" in term or len(term) < 4:
        return False
    return " " in term or not term.endswith(_ADJECTIVE_ENDINGS)


def prompt_set(name: str) -> dict[str, PromptPair | tuple[str, str]]:
    """The zero-shot prompts of a named set (:data:`PROMPT_SETS`): ``default`` (the ensembles of
    :func:`build_prompts` for CheXpert-14 and the chest/abdomen CT findings; the set calibration is fitted with)
    or ``phantom`` (:data:`PHANTOM_PROMPTS`)."""
    if name not in PROMPT_SETS:
        raise ValueError(f"prompt set '{name}' is not one of {', '.join(PROMPT_SETS)}")
    return dict(PHANTOM_PROMPTS) if name == "phantom" else dict(build_prompts(LabelSpace.chest_abdomen_ct()))
