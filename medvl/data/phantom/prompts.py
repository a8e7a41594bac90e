"""Zero-shot prompts for the phantom cohort's planted observations.

Each observation has a positive and a negative sentence in report style. None of them occurs, even inside a
longer sentence, in the ``train`` phrasing pool (``tests/test_phantom_reports.py`` checks every rendered
training sentence), so a model that classifies with them has learnt the concept rather than a memorised
training sentence. The project's general prompt ensembles (:mod:`medvl.text.prompts`) are checked too: none
of them is a whole training sentence.
"""

from __future__ import annotations

from medvl.data.phantom.labels import ASCITES, KIDNEY_CYST, LIVER_LESION, LYMPHADENOPATHY

ZERO_SHOT_PROMPTS: dict[str, tuple[str, str]] = {
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
    LIVER_LESION: ("A liver lesion is present.", "There is no liver lesion."),
    KIDNEY_CYST: ("A kidney cyst is present.", "There is no kidney cyst."),
    ASCITES: ("Ascites is present.", "There is no ascites."),
    LYMPHADENOPATHY: ("An enlarged lymph node is present.", "There are no enlarged lymph nodes."),
    "No Finding": ("No acute abnormality is present.", "An acute abnormality is present."),
}
"""Observation -> (positive prompt, negative prompt)."""
