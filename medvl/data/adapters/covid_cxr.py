"""``covid-cxr``: the covid-chestxray-dataset layout (``metadata.csv`` + ``images/`` + ``lung_masks/``).

One CSV row is one image. Images of one patient taken at the same visit (same ``offset``, ``date``, case
``url`` and ``clinical_notes``, typically a PA and a lateral) form one study. The clinical notes are the
report; sections are filled when the notes carry headings. ``lung_mask`` becomes the image's mask.

Label space (:data:`LABEL_SPACE`): the ``finding`` column is a diagnosis, flat (``COVID-19``,
``Streptococcus``) or a path (``Pneumonia/Viral/COVID-19``), several joined by commas. Every finding
sets its whole path in :data:`TAXONOMY` to 1 (``Streptococcus`` -> Pneumonia, Bacterial, Streptococcus).
``COVID-19`` and ``No Finding`` are definite for every labelled study (0 when not the diagnosis); a ``No
Finding`` study is 0 for every label; other labels are positive-only (absent = unknown). ``todo`` and
``Unknown`` mean unlabelled (no labels). A finding outside the taxonomy quarantines the study.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cached_property
from pathlib import Path

import pandas as pd

from medvl.data.adapters.base import SourceAdapter, UnitResult
from medvl.data.adapters.common import (
    XRAY_MODALITY,
    keep_readable,
    normalise_sex,
    normalise_view,
    parse_age,
    primary_view,
    report_sections,
)
from medvl.data.manifest import image_ref, make_row

_VIRAL = ("Pneumonia", "Viral")
_BACTERIAL = ("Pneumonia", "Bacterial")
_FUNGAL = ("Pneumonia", "Fungal")
TAXONOMY: dict[str, tuple[str, ...]] = {
    "No Finding": ("No Finding",),
    "Pneumonia": ("Pneumonia",),
    "Viral": _VIRAL,
    "Bacterial": _BACTERIAL,
    "Fungal": _FUNGAL,
    "COVID-19": (*_VIRAL, "COVID-19"),
    "SARS": (*_VIRAL, "SARS"),
    "MERS-CoV": (*_VIRAL, "MERS-CoV"),
    "Influenza": (*_VIRAL, "Influenza"),
    "H1N1": (*_VIRAL, "Influenza"),
    "Varicella": (*_VIRAL, "Varicella"),
    "Herpes": (*_VIRAL, "Herpes"),
    "Streptococcus": (*_BACTERIAL, "Streptococcus"),
    "Staphylococcus": (*_BACTERIAL, "Staphylococcus"),
    "MRSA": (*_BACTERIAL, "Staphylococcus"),
    "Klebsiella": (*_BACTERIAL, "Klebsiella"),
    "Legionella": (*_BACTERIAL, "Legionella"),
    "E.Coli": (*_BACTERIAL, "E.Coli"),
    "Mycoplasma": (*_BACTERIAL, "Mycoplasma"),
    "Chlamydophila": (*_BACTERIAL, "Chlamydophila"),
    "Nocardia": (*_BACTERIAL, "Nocardia"),
    "Pneumocystis": (*_FUNGAL, "Pneumocystis"),
    "Aspergillosis": (*_FUNGAL, "Aspergillosis"),
    "Lipoid": ("Pneumonia", "Lipoid"),
    "Aspiration": ("Pneumonia", "Aspiration"),
    "ARDS": ("ARDS",),
    "Tuberculosis": ("Tuberculosis",),
}
"""Each known finding and the labels it sets (its path from the top of the hierarchy)."""

ALIASES = {"Mycoplasma Bacterial Pneumonia": "Mycoplasma", "MERS": "MERS-CoV"}
"""Upstream spellings mapped onto :data:`TAXONOMY` keys."""

UNLABELLED = frozenset({"todo", "Unknown", ""})
LABEL_SPACE = tuple(sorted({label for path in TAXONOMY.values() for label in path}))
DEFINITE = ("COVID-19", "No Finding")
_PATIENT_FIELDS = ("survival", "intubated", "intubation_present", "went_icu", "in_icu", "needed_supplemental_O2")


def finding_labels(finding: str) -> dict[str, int]:
    """Labels for one ``finding`` value (see the module docstring); raises ``ValueError`` on unknown terms."""
    text = finding.strip()
    if text in UNLABELLED:
        return {}
    labels: dict[str, int] = {}
    for part in text.split(","):
        for term in (t.strip() for t in part.split("/")):
            term = ALIASES.get(term, term)
            if term not in TAXONOMY:
                raise ValueError(
                    f"finding '{finding}': unknown term '{term}' (known: {', '.join(sorted(TAXONOMY))})"
                )
            labels.update(dict.fromkeys(TAXONOMY[term], 1))
    if "No Finding" in labels:
        if len(labels) > 1:
            raise ValueError(f"finding '{finding}' says 'No Finding' together with a disease")
        return {name: int(name == "No Finding") for name in LABEL_SPACE}
    return {**{name: 0 for name in DEFINITE}, **labels}


class CovidCxrAdapter(SourceAdapter):
    """Reads the covid-chestxray-dataset layout; a unit is one study (a group of CSV rows)."""

    name = "covid-cxr"
    description = "covid-chestxray-dataset: metadata.csv, images/, lung_masks/ (one study per patient visit)"
    licence = "per image (metadata.csv 'license'): CC BY-NC-SA, CC BY or CC BY-SA; lung masks CC BY 4.0"

    @cached_property
    def _studies(self) -> dict[str, list[dict]]:
        csv_path = self.root / "metadata.csv"
        if not csv_path.is_file():
            raise FileNotFoundError(f"{csv_path}: no metadata.csv; point at the covid-chestxray-dataset folder")
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
        missing = {"patientid", "finding", "view", "image", "clinical_notes"} - set(table.columns)
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {sorted(missing)}")
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for record in table.to_dict("records"):
            key = (record["patientid"], record.get("offset", ""), record.get("date", ""), record.get("url", ""),
                   record["clinical_notes"])
            groups[key].append(record)
        studies = {}
        for records in groups.values():
            records.sort(key=lambda r: r["image"])
            studies[f"{records[0]['patientid']}_{Path(records[0]['image']).stem}"] = records
        return studies

    def units(self) -> list[str]:
        """Study ids (patient id + first image name), sorted."""
        return sorted(self._studies)

    def read_unit(self, unit: str) -> UnitResult:
        """One study: its readable images, the notes as report, the finding as labels."""
        records = self._studies[unit]
        first = records[0]
        refs = [
            image_ref(
                self.root / r["image"],
                modality=XRAY_MODALITY,
                view=normalise_view(r["view"]),
                kind="2d",
                mask=self.root / r["lung_mask"] if r.get("lung_mask") else "",
            )
            for r in records
        ]
        kept, rejected = keep_readable(refs)
        if not kept:
            return UnitResult([], rejected)
        findings = {r["finding"] for r in records}
        if len(findings) > 1:
            raise ValueError(f"metadata.csv study {unit}: images disagree on the finding {sorted(findings)}")
        extra = {field: first[field] for field in ("offset", "date", "location", "url", "doi", "license",
                                                   "other_notes", "finding", *_PATIENT_FIELDS) if first.get(field)}
        row = make_row(
            patient_id=first["patientid"],
            study_id=unit,
            source=self.name,
            images=kept,
            labels=finding_labels(first["finding"]),
            extra=extra,
            age=parse_age(first.get("age")),
            sex=normalise_sex(first.get("sex")),
            view=primary_view(ref["view"] for ref in kept),
            report=first["clinical_notes"].strip(),
            **report_sections(first["clinical_notes"]),
        )
        return UnitResult([row], rejected)
