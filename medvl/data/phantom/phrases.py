"""Report phrasings of the phantom cohort, split into a ``train`` and an ``eval`` pool.

Every sentence either asserts findings (present or, for subtle ones, uncertain) or denies them, never both,
so that a sentence-level labeller can check reports against ground truth. Templates are ``str.format``
strings over the fields ``sev`` (severity adjective), ``sevly`` (its adverb), ``side``, ``lobe`` (``right
lower lobe``), ``zone`` (``upper``/``mid``/``lower``), ``size`` (cm: a diameter, or a lymph node's short
axis), ``hep`` (``right hepatic lobe``) and ``station`` (lymph node station, ``right hilar``); the first
letter of each sentence is capitalised after formatting.

A patient's studies use one pool: held-out patients get ``eval`` phrasings, which never occur in ``train``, so
a model cannot pass the held-out evaluation by memorising training sentences. The zero-shot prompts
(:data:`medvl.text.prompts.PHANTOM_PROMPTS`) never occur in the ``train`` pool, and no prompt of
:func:`medvl.text.prompts.build_prompts` is a whole ``train`` sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

from medvl.data.phantom.labels import ASCITES, KIDNEY_CYST, LIVER_LESION, LYMPHADENOPATHY

POOLS = ("train", "eval")


@dataclass(frozen=True)
class Pools:
    """Templates of one kind of sentence, per phrasing pool."""

    train: tuple[str, ...]
    eval: tuple[str, ...]

    def get(self, pool: str) -> tuple[str, ...]:
        """The templates of ``pool`` (``train`` or ``eval``)."""
        if pool not in POOLS:
            raise ValueError(f"phrasing pool must be one of {POOLS}, got {pool!r}")
        return getattr(self, pool)


@dataclass(frozen=True)
class Negation:
    """A sentence denying findings.

    Attributes:
        requires_absent: the sentence is true only when none of these observations has ground truth 1.
        negates: the observations it explicitly denies (their report-mention label becomes 0).
        organ: the organ heading used by structured CT reports.
        pools: its templates.
    """

    requires_absent: frozenset[str]
    negates: frozenset[str]
    organ: str
    pools: Pools


SEVERITY_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "Cardiomegaly": {"mild": ("mild",), "moderate": ("moderate",), "severe": ("marked", "severe")},
    "Pleural Effusion": {
        "mild": ("small",),
        "moderate": ("moderate", "moderate-sized"),
        "severe": ("large",),
    },
    "Pneumothorax": {"mild": ("small",), "moderate": ("moderate", "moderate-sized"), "severe": ("large",)},
    "Consolidation": {"mild": ("patchy", "mild"), "moderate": ("focal",), "severe": ("dense", "extensive")},
    ASCITES: {"mild": ("small", "trace"), "moderate": ("moderate",), "severe": ("large",)},
}
ADVERBS = {"mild": "mildly", "moderate": "moderately", "marked": "markedly", "severe": "severely"}
ORGANS = {
    "Cardiomegaly": "Heart",
    "Pleural Effusion": "Pleura",
    "Pneumothorax": "Pleura",
    LIVER_LESION: "Liver",
    KIDNEY_CYST: "Kidneys",
    ASCITES: "Peritoneum",
    LYMPHADENOPATHY: "Lymph nodes",
}

_LUNG_FINDINGS = frozenset(
    {
        "Lung Opacity",
        "Lung Lesion",
        "Consolidation",
        "Pneumonia",
        "Atelectasis",
        "Edema",
        "Pleural Effusion",
        "Pneumothorax",
    }
)

# (finding, variant) -> templates; variant is present / present_bilateral / uncertain / uncertain_bilateral /
# impression / impression_bilateral.
CXR_POSITIVE: dict[tuple[str, str], Pools] = {
    ("Cardiomegaly", "present"): Pools(
        train=(
            "{sev} cardiomegaly.",
            "The heart is {sevly} enlarged.",
            "{sev} enlargement of the cardiac silhouette.",
            "The cardiac silhouette is {sevly} enlarged.",
        ),
        eval=(
            "Heart size is {sevly} increased.",
            "There is {sev} cardiomegaly.",
            "The heart appears {sevly} enlarged.",
        ),
    ),
    ("Cardiomegaly", "uncertain"): Pools(
        train=("Possible mild cardiomegaly.", "Mild cardiomegaly cannot be excluded."),
        eval=("The heart may be mildly enlarged.",),
    ),
    ("Cardiomegaly", "impression"): Pools(
        train=("Enlarged cardiac silhouette.", "{sev} cardiomegaly."),
        eval=("Enlarged heart.", "{sev} enlargement of the heart."),
    ),
    ("Pleural Effusion", "present"): Pools(
        train=(
            "{sev} {side} pleural effusion.",
            "There is a {sev} {side} pleural effusion.",
            "{sev} {side}-sided pleural effusion.",
        ),
        eval=(
            "{side} pleural effusion, {sev} in size.",
            "A {sev} effusion is seen on the {side}.",
            "Blunting of the {side} costophrenic angle consistent with a {sev} pleural effusion.",
        ),
    ),
    ("Pleural Effusion", "present_bilateral"): Pools(
        train=("{sev} bilateral pleural effusions.", "There are {sev} bilateral pleural effusions."),
        eval=("Bilateral pleural effusions, {sev} in size.", "{sev} effusions are seen on both sides."),
    ),
    ("Pleural Effusion", "uncertain"): Pools(
        train=(
            "Possible small {side} pleural effusion.",
            "A small {side} pleural effusion cannot be excluded.",
        ),
        eval=("Questionable small {side} effusion.",),
    ),
    ("Pleural Effusion", "uncertain_bilateral"): Pools(
        train=("Possible small bilateral pleural effusions.",),
        eval=("Questionable small effusions on both sides.",),
    ),
    ("Pleural Effusion", "impression"): Pools(
        train=("{sev} {side} pleural effusion.", "{side} pleural effusion."),
        eval=("{side}-sided effusion.", "{sev} effusion on the {side}."),
    ),
    ("Pleural Effusion", "impression_bilateral"): Pools(
        train=("Bilateral pleural effusions.", "{sev} bilateral pleural effusions."),
        eval=("Effusions on both sides.",),
    ),
    ("Consolidation", "present"): Pools(
        train=(
            "{sev} consolidation in the {lobe}.",
            "There is {sev} consolidation of the {lobe}.",
            "{sev} {lobe} consolidation.",
        ),
        eval=(
            "{sev} airspace consolidation involving the {lobe}.",
            "Consolidation is seen in the {lobe}, {sev} in character.",
        ),
    ),
    ("Consolidation", "uncertain"): Pools(
        train=(
            "Possible {sev} consolidation in the {lobe}.",
            "Subtle opacity in the {lobe}, possibly early consolidation.",
        ),
        eval=("Questionable consolidation in the {lobe}.",),
    ),
    ("Consolidation", "impression"): Pools(
        train=("{lobe} consolidation.", "{sev} consolidation in the {lobe}."),
        eval=("Airspace consolidation, {lobe}.",),
    ),
    ("Lung Lesion", "present"): Pools(
        train=(
            "{size} cm nodule in the {side} {zone} lung.",
            "There is a {size} cm nodular opacity in the {side} {zone} lung.",
            "A {size} cm {side} {zone} lung nodule is seen.",
        ),
        eval=(
            "Rounded {size} cm nodule projecting over the {side} {zone} lung zone.",
            "{side} {zone} lung nodule measuring {size} cm.",
        ),
    ),
    ("Lung Lesion", "uncertain"): Pools(
        train=("Possible {size} cm nodule in the {side} {zone} lung.",),
        eval=("A {size} cm nodular density in the {side} {zone} lung may represent a nodule.",),
    ),
    ("Lung Lesion", "impression"): Pools(
        train=(
            "{side} {zone} lung nodule; CT recommended for further evaluation.",
            "{size} cm {side} lung nodule.",
        ),
        eval=("Pulmonary nodule in the {side} {zone} lung.",),
    ),
    ("Pneumothorax", "present"): Pools(
        train=(
            "{sev} {side} pneumothorax.",
            "There is a {sev} {side} apical pneumothorax.",
            "{sev} {side}-sided pneumothorax with a visible pleural line.",
        ),
        eval=("{side} pneumothorax, {sev} in size.", "A {sev} pneumothorax is seen at the {side} apex."),
    ),
    ("Pneumothorax", "uncertain"): Pools(
        train=("Possible small {side} apical pneumothorax.",),
        eval=("A small {side} pneumothorax cannot be excluded.",),
    ),
    ("Pneumothorax", "impression"): Pools(
        train=("{sev} {side} pneumothorax.", "{side} pneumothorax."),
        eval=("{side}-sided pneumothorax, {sev}.",),
    ),
}

CT_POSITIVE: dict[tuple[str, str], Pools] = {
    ("Pleural Effusion", "present"): Pools(
        train=("{sev} {side} pleural effusion.", "{sev} dependent {side} pleural effusion."),
        eval=(
            "{side} pleural effusion, {sev} in size.",
            "There is a {sev} fluid collection in the {side} pleural space, consistent with effusion.",
        ),
    ),
    ("Pleural Effusion", "present_bilateral"): CXR_POSITIVE[("Pleural Effusion", "present_bilateral")],
    ("Pleural Effusion", "uncertain"): CXR_POSITIVE[("Pleural Effusion", "uncertain")],
    ("Pleural Effusion", "uncertain_bilateral"): CXR_POSITIVE[("Pleural Effusion", "uncertain_bilateral")],
    ("Pleural Effusion", "impression"): CXR_POSITIVE[("Pleural Effusion", "impression")],
    ("Pleural Effusion", "impression_bilateral"): CXR_POSITIVE[("Pleural Effusion", "impression_bilateral")],
    ("Lung Lesion", "present"): Pools(
        train=(
            "{size} cm solid nodule in the {lobe}.",
            "There is a {size} cm pulmonary nodule in the {lobe}.",
        ),
        eval=("Solid {lobe} nodule measuring {size} cm.", "A {size} cm nodule is noted in the {lobe}."),
    ),
    ("Lung Lesion", "uncertain"): Pools(
        train=("Possible {size} cm nodule in the {lobe}.",),
        eval=("Questionable {size} cm nodule in the {lobe}.",),
    ),
    ("Lung Lesion", "impression"): Pools(
        train=("{size} cm {lobe} nodule; follow-up CT is recommended.", "{lobe} pulmonary nodule."),
        eval=("Pulmonary nodule in the {lobe}.",),
    ),
    (LIVER_LESION, "present"): Pools(
        train=(
            "{size} cm hypodense lesion in the {hep}.",
            "There is a {size} cm hypoattenuating lesion in the {hep}.",
        ),
        eval=(
            "Low-attenuation lesion in the {hep} measuring {size} cm.",
            "A {size} cm hypodense hepatic lesion is seen in the {hep}.",
        ),
    ),
    (LIVER_LESION, "uncertain"): Pools(
        train=("Possible {size} cm hypodense lesion in the {hep}.",),
        eval=("A {size} cm hypodensity in the {hep} may represent a hepatic lesion.",),
    ),
    (LIVER_LESION, "impression"): Pools(
        train=("Hypodense lesion in the {hep}.", "{size} cm hypodense liver lesion."),
        eval=("Hepatic lesion in the {hep}.",),
    ),
    (KIDNEY_CYST, "present"): Pools(
        train=(
            "{size} cm simple cyst in the {side} kidney.",
            "There is a {size} cm fluid-attenuation renal cyst arising from the {side} kidney.",
        ),
        eval=(
            "{side} renal cyst measuring {size} cm.",
            "A {size} cm water-density cyst is seen in the {side} kidney.",
        ),
    ),
    (KIDNEY_CYST, "uncertain"): Pools(
        train=("Possible {size} cm cyst in the {side} kidney.",),
        eval=("A {size} cm hypodensity in the {side} kidney may represent a renal cyst.",),
    ),
    (KIDNEY_CYST, "impression"): Pools(
        train=("{side} renal cyst.", "{size} cm simple {side} renal cyst."),
        eval=("Simple cyst of the {side} kidney.",),
    ),
    (ASCITES, "present"): Pools(
        train=(
            "{sev} ascites in the perihepatic space and both paracolic gutters.",
            "There is {sev} ascites, perihepatic and along the flanks.",
        ),
        eval=(
            "Ascites, {sev} in amount, tracking along the paracolic gutters into the perihepatic space.",
            "{sev} intraperitoneal fluid in the flanks and perihepatic space, consistent with ascites.",
        ),
    ),
    (ASCITES, "uncertain"): Pools(
        train=("Possible trace perihepatic ascites.",),
        eval=("Questionable small amount of ascites in the flanks.",),
    ),
    (ASCITES, "impression"): Pools(
        train=("{sev} ascites.", "{sev} perihepatic and paracolic ascites."),
        eval=("Ascites, {sev} in amount.",),
    ),
    (LYMPHADENOPATHY, "present"): Pools(
        train=(
            "{station} lymphadenopathy: enlarged lymph node measuring {size} cm in short axis.",
            "There is an enlarged {station} lymph node, {size} cm in short axis.",
        ),
        eval=(
            "{station} adenopathy, the node measuring {size} cm in short-axis diameter.",
            "Pathologically enlarged {station} node with a short axis of {size} cm.",
        ),
    ),
    (LYMPHADENOPATHY, "uncertain"): Pools(
        train=("Possible enlarged {station} lymph node, {size} cm in short axis.",),
        eval=("Questionable {station} lymphadenopathy ({size} cm short axis).",),
    ),
    (LYMPHADENOPATHY, "impression"): Pools(
        train=("{station} lymphadenopathy.", "{size} cm {station} lymph node enlargement."),
        eval=("Enlarged {station} node.",),
    ),
}


def _negation(
    requires: set[str], negates: set[str], organ: str, train: tuple[str, ...], eval_: tuple[str, ...]
) -> Negation:
    return Negation(frozenset(requires), frozenset(negates), organ, Pools(train, eval_))


_EFFUSION_PTX = {"Pleural Effusion", "Pneumothorax"}
_CLEAR_LUNGS = _negation(
    set(_LUNG_FINDINGS), set(), "Lungs", ("The lungs are clear.",), ("Lungs are clear bilaterally.",)
)

CXR_NEGATIONS: tuple[Negation, ...] = (
    _negation(
        _EFFUSION_PTX,
        _EFFUSION_PTX,
        "Pleura",
        ("No pleural effusion or pneumothorax.",),
        ("There is no pleural effusion or pneumothorax.", "No effusion or pneumothorax is seen."),
    ),
    _negation(
        {"Pleural Effusion"},
        {"Pleural Effusion"},
        "Pleura",
        ("No pleural effusion is seen.", "No pleural effusions."),
        ("There is no effusion.", "Costophrenic angles are sharp."),
    ),
    _negation(
        {"Pneumothorax"},
        {"Pneumothorax"},
        "Pleura",
        ("No pneumothorax is identified.",),
        ("There is no pneumothorax.", "No evidence of pneumothorax."),
    ),
    _negation(
        {"Cardiomegaly"},
        {"Cardiomegaly"},
        "Heart",
        ("Heart size is normal.", "The heart is normal in size.", "No cardiomegaly is seen."),
        ("Normal heart size.", "The heart is not enlarged."),
    ),
    _negation(
        {"Cardiomegaly", "Enlarged Cardiomediastinum"},
        {"Enlarged Cardiomediastinum"},
        "Mediastinum",
        ("The cardiomediastinal silhouette is within normal limits.", "Normal cardiomediastinal silhouette."),
        ("Mediastinal and hilar contours are unremarkable.",),
    ),
    _CLEAR_LUNGS,
    _negation(
        {"Consolidation"},
        {"Consolidation"},
        "Lungs",
        ("No focal consolidation.", "No focal airspace consolidation."),
        ("There is no focal consolidation.",),
    ),
    _negation(
        {"Consolidation", "Pneumonia"},
        {"Consolidation", "Pneumonia"},
        "Lungs",
        ("No focal consolidation to suggest pneumonia.",),
        ("No consolidation or other sign of pneumonia.",),
    ),
    _negation(
        {"Edema"}, {"Edema"}, "Lungs", ("No signs of pulmonary edema.",), ("No evidence of pulmonary edema.",)
    ),
    _negation(
        {"Lung Lesion"},
        {"Lung Lesion"},
        "Lungs",
        ("No pulmonary nodules.",),
        ("No suspicious pulmonary nodule.",),
    ),
    _negation(
        {"Lung Opacity", "Consolidation", "Lung Lesion"},
        {"Lung Opacity"},
        "Lungs",
        ("No focal airspace opacity.",),
        ("No focal lung opacity.",),
    ),
    _negation(
        {"Fracture"},
        {"Fracture"},
        "Bones",
        ("No acute osseous abnormality.", "No displaced rib fracture."),
        ("No acute fracture is seen.",),
    ),
)

CT_NEGATIONS: tuple[Negation, ...] = (
    CXR_NEGATIONS[0],
    CXR_NEGATIONS[1],
    _negation(
        {"Lung Lesion"},
        {"Lung Lesion"},
        "Lungs",
        ("No pulmonary nodules.", "No suspicious pulmonary nodules or masses."),
        ("No pulmonary nodule is identified.", "There is no lung nodule."),
    ),
    _negation(
        {LIVER_LESION},
        {LIVER_LESION},
        "Liver",
        ("No focal hepatic lesion.", "The liver is normal in attenuation without focal lesion."),
        ("The liver is unremarkable.", "No focal liver lesion is seen."),
    ),
    _CLEAR_LUNGS,
    _negation(
        {"Consolidation"},
        {"Consolidation"},
        "Lungs",
        ("No consolidation is seen.",),
        ("There is no airspace consolidation.",),
    ),
    _negation(
        {"Cardiomegaly"},
        {"Cardiomegaly"},
        "Heart",
        ("Heart size is normal.",),
        ("The heart is not enlarged.",),
    ),
    _negation(
        {KIDNEY_CYST},
        {KIDNEY_CYST},
        "Kidneys",
        ("No renal cysts.", "The kidneys are unremarkable."),
        ("No cystic renal lesion is identified.", "Both kidneys are normal in appearance."),
    ),
    _negation(
        {ASCITES},
        {ASCITES},
        "Peritoneum",
        ("No ascites is seen.", "No intraperitoneal free fluid."),
        ("There is no ascites.", "No free fluid in the abdomen."),
    ),
    _negation(
        {LYMPHADENOPATHY},
        {LYMPHADENOPATHY},
        "Lymph nodes",
        ("No enlarged lymph nodes.", "No thoracic lymphadenopathy."),
        ("There is no lymphadenopathy.", "Lymph nodes are not enlarged by size criteria."),
    ),
)

# How a CT report cites the key image of a finding (image numbers count the slices from the head).
KEY_IMAGE_CITATIONS = Pools(
    train=("(image {n})", "(series 2, image {n})"),
    eval=("(se 2, im {n})", "(series 2 image #{n})"),
)

NORMAL_IMPRESSIONS = {
    "2d": Pools(
        train=("No acute cardiopulmonary process.", "No acute cardiopulmonary findings."),
        eval=("No acute intrathoracic process.", "Normal chest radiograph."),
    ),
    "3d": Pools(
        train=("No acute abnormality in the chest or upper abdomen.", "No acute findings."),
        eval=(
            "Unremarkable CT of the chest and upper abdomen.",
            "No acute intrathoracic or upper abdominal abnormality.",
        ),
    ),
}

INDICATIONS = (
    "Cough.",
    "Shortness of breath.",
    "Fever.",
    "Chest pain.",
    "Preoperative evaluation.",
    "Follow-up.",
)
EXAMINATIONS = {
    "2d": ("EXAMINATION: Chest radiograph, {view} view.", "EXAMINATION: CHEST ({view})."),
    "3d": (
        "EXAMINATION: CT chest and upper abdomen with intravenous contrast, portal venous phase.",
        "EXAMINATION: CT CHEST/ABDOMEN WITH CONTRAST.",
    ),
}
COMPARISONS = ("COMPARISON: None.", "COMPARISON: None available.")
