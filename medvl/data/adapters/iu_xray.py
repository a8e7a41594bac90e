"""``iu-xray``: the Indiana University chest X-ray collection (Open-i): report XML, optionally the images.

The path is ``NLMCXR_reports.tgz`` or its extracted folder (``ecgen-radiology/<n>.xml``), read by
:func:`medvl.text.iu_xray.read_iu_reports`. Images (``NLMCXR_png/CXR1_1_IM-0001-3001.png``) are referenced
when the option ``images=DIR`` is given or an ``NLMCXR_png`` folder sits beside the reports; without them
the rows are text-only. The collection has no patient ids: each report is its own patient.

Labels come from the manual MeSH terms, positive-only: a term's head (``Cardiomegaly/mild`` -> ``Cardiomegaly``),
or, when the head is an anatomical site (:data:`ANATOMY`), the head and its first qualifier that is not a
location or extent (:data:`SITE_WORDS`): ``Lung/hypoinflation/mild`` -> ``Lung/hypoinflation``,
``Diaphragm/right/elevated`` -> ``Diaphragm/elevated``. A report whose only term is ``normal`` gets
``No Finding``: 1; ``No Indexing`` gives no labels.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from medvl.data.adapters.base import SourceAdapter, UnitResult
from medvl.data.adapters.common import XRAY_MODALITY, keep_readable
from medvl.data.manifest import image_ref, make_row
from medvl.text.iu_xray import IUReport, read_iu_reports

IMAGE_FOLDER = "NLMCXR_png"
ANATOMY = (
    "Abdomen", "Aorta", "Aorta, Thoracic", "Blood Vessels", "Bone and Bones", "Cardiac Shadow", "Cervical Vertebrae",
    "Costophrenic Angle", "Diaphragm", "Heart", "Heart Atria", "Heart Ventricles", "Humerus", "Lumbar Vertebrae",
    "Lung", "Lymph Nodes", "Markings", "Mediastinum", "Pleura", "Pulmonary Artery", "Ribs", "Shoulder", "Spine",
    "Thoracic Vertebrae", "Thorax", "Trachea", "Trachea, Carina",
)
"""MeSH heads that name a site rather than a finding; the first qualifier says what is wrong there."""
SITE_WORDS = frozenset({
    "anterior", "apex", "azygos lobe", "base", "bilateral", "blood vessels", "borderline", "bronchovascular",
    "chronic", "diffuse", "focal", "hilum", "interstitial", "left", "lingula", "lower lobe", "lung", "lymph nodes",
    "middle lobe", "mild", "moderate", "multiple", "paratracheal", "posterior", "retrocardiac", "right",
    "scattered", "severe", "small", "sulcus", "thorax", "upper lobe",
})
"""Qualifiers that say where or how much, skipped when looking for what an anatomical term reports."""
_ANATOMY = {name.lower(): name for name in ANATOMY}


def mesh_labels(terms: list[str]) -> dict[str, int]:
    """Positive labels from manual MeSH terms (see the module docstring)."""
    labels = set()
    for term in terms:
        parts = [part.strip() for part in term.split("/")]
        head = _ANATOMY.get(parts[0].lower())
        if head is None:
            labels.add(parts[0])
            continue
        what = [q.lower() for q in parts[1:] if q.lower() not in SITE_WORDS]
        labels.add("/".join([head, *what[:1]]))
    labels -= {"", "No Indexing"}
    if labels == {"normal"}:
        return {"No Finding": 1}
    return dict.fromkeys(sorted(labels - {"normal"}), 1)


class IuXrayAdapter(SourceAdapter):
    """Reads the IU X-ray reports; a unit is one report (``CXR1``)."""

    name = "iu-xray"
    description = "IU X-ray (Open-i): NLMCXR_reports.tgz or ecgen-radiology/*.xml; images=NLMCXR_png when present"
    licence = "Open-i / Indiana University: CC BY-NC-ND 4.0 (no modified copies)"

    @cached_property
    def _reports(self) -> dict[str, IUReport]:
        return {report.report_id: report for report in read_iu_reports(self.root)}

    @property
    def images_dir(self) -> Path | None:
        """The image folder: the ``images`` option, else an ``NLMCXR_png`` beside the reports, else None."""
        if "images" in self.options:
            return Path(self.options["images"])
        folder = self.root if self.root.is_dir() else self.root.parent
        for candidate in (folder / IMAGE_FOLDER, folder.parent / IMAGE_FOLDER):
            if candidate.is_dir():
                return candidate
        return None

    def units(self) -> list[str]:
        """Report ids in the collection's numeric order; with option ``text_only=true`` only the reports that
        have findings or an impression (as R2Gen keeps them)."""
        text_only = self.options.get("text_only", "false").lower() in ("true", "yes", "1")
        return [i for i, r in self._reports.items() if not text_only or r.findings or r.impression]

    def read_unit(self, unit: str) -> UnitResult:
        """One report: sections, MeSH labels and, when the image folder exists, its images."""
        report = self._reports[unit]
        images_dir = self.images_dir
        kept, rejected = [], []
        if images_dir is not None:
            refs = [image_ref(images_dir / f"{i}.png", modality=XRAY_MODALITY, kind="2d") for i in report.image_ids]
            kept, rejected = keep_readable(refs)
        if not kept and not report.text:
            raise ValueError(f"{report.source}: report {unit} has no text and no readable image")
        row = make_row(
            patient_id=unit,
            study_id=unit,
            source=self.name,
            images=kept,
            labels=mesh_labels(report.mesh_major),
            report=report.text,
            findings=report.findings,
            impression=report.impression,
            extra={"comparison": report.comparison, "indication": report.indication, "mesh_major": report.mesh_major,
                   "image_ids": report.image_ids, "xml": report.source},
        )
        return UnitResult([row], rejected)
