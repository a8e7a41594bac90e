"""Reader for the Indiana University chest X-ray report collection (Open-i ``NLMCXR_reports.tgz``).

Each report is one XML file (``ecgen-radiology/<n>.xml``) with COMPARISON, INDICATION, FINDINGS and IMPRESSION
sections, manual MeSH terms (``<major>``; ``<minor>`` where present) and MTI's automatic terms
(``<automatic>``), plus the ids of the report's images. The archive is read in place (no extraction).
"""

from __future__ import annotations

import re
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from medvl.text.errors import ReportSourceError

_SECTIONS = ("comparison", "indication", "findings", "impression")


@dataclass
class IUReport:
    """One IU X-ray report.

    Attributes:
        report_id: the collection's id, e.g. ``CXR1``.
        comparison, indication, findings, impression: section text (empty string when absent); anonymised
            words appear as ``XXXX`` as in the source.
        mesh_major: manual MeSH terms, e.g. ``Pleural Effusion/left/small`` or ``normal``.
        mesh_minor: ``<minor>`` MeSH terms (the public release has none, so this is usually empty).
        mesh_automatic: terms found by the MTI indexer (``<automatic>``), noisier than the manual ones.
        image_ids: ids of the report's images, e.g. ``CXR1_1_IM-0001-3001``.
        source: the XML member or file the report was read from.
    """

    report_id: str
    comparison: str = ""
    indication: str = ""
    findings: str = ""
    impression: str = ""
    mesh_major: list[str] = field(default_factory=list)
    mesh_minor: list[str] = field(default_factory=list)
    mesh_automatic: list[str] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def findings_impression(self) -> str:
        """FINDINGS and IMPRESSION joined by a blank line (the text the labeller reads)."""
        return "\n\n".join(part for part in (self.findings, self.impression) if part)

    @property
    def text(self) -> str:
        """The whole report with upper-case headings, one section per paragraph."""
        return "\n\n".join(f"{name.upper()}: {getattr(self, name)}" for name in _SECTIONS if getattr(self, name))


def parse_iu_xml(data: bytes | str, source: str = "<string>") -> IUReport:
    """Parse one report XML document.

    Args:
        data: the XML document.
        source: file name used in error messages and stored in :attr:`IUReport.source`.

    Raises:
        ReportSourceError: the document is not XML or has no ``<uId id=...>``.
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ReportSourceError(source, f"not an XML document ({exc})") from exc
    uid = root.find("uId")
    if uid is None or not uid.get("id"):
        raise ReportSourceError(source, "no <uId id=...> element: not an IU X-ray (Open-i) report")
    report = IUReport(report_id=uid.get("id", ""), source=source)
    for node in root.iter("AbstractText"):
        name = (node.get("Label") or "").lower()
        if name in _SECTIONS:
            setattr(report, name, " ".join((node.text or "").split()))
    mesh = root.find("MeSH")
    if mesh is not None:
        report.mesh_major = _texts(mesh, "major")
        report.mesh_minor = _texts(mesh, "minor")
        report.mesh_automatic = _texts(mesh, "automatic")
    report.image_ids = [node.get("id", "") for node in root.iter("parentImage") if node.get("id")]
    return report


def _texts(parent: ET.Element, tag: str) -> list[str]:
    return [" ".join(node.text.split()) for node in parent.iter(tag) if node.text and node.text.strip()]


def _sort_key(report: IUReport) -> tuple[int, str]:
    digits = re.sub(r"\D", "", report.report_id)
    return (int(digits) if digits else -1, report.report_id)


def read_iu_reports(path: str | Path) -> list[IUReport]:
    """All reports of the archive (``.tgz`` / ``.tar.gz``), a folder of XML files, or a single XML file.

    Reports are returned sorted by their numeric id (``CXR1``, ``CXR2``, ...).

    Raises:
        ReportSourceError: the path does not exist, is not a readable archive, holds no report XML, or one
            of its documents is malformed (the error names the member).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.rglob("*.xml"))
        reports = [parse_iu_xml(f.read_bytes(), str(f)) for f in files]
    elif path.is_file() and path.suffix.lower() == ".xml":
        reports = [parse_iu_xml(path.read_bytes(), str(path))]
    elif path.is_file():
        reports = _read_archive(path)
    else:
        raise ReportSourceError(path, "no such file or folder; pass NLMCXR_reports.tgz or its extracted folder")
    if not reports:
        raise ReportSourceError(path, "contains no report XML files (expected ecgen-radiology/*.xml)")
    return sorted(reports, key=_sort_key)


def _read_archive(path: Path) -> list[IUReport]:
    try:
        with tarfile.open(path, "r:*") as archive:
            reports = []
            for member in archive:
                if member.isfile() and member.name.lower().endswith(".xml"):
                    handle = archive.extractfile(member)
                    if handle is not None:
                        reports.append(parse_iu_xml(handle.read(), f"{path}:{member.name}"))
            return reports
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ReportSourceError(path, f"not a readable tar archive ({exc}); pass NLMCXR_reports.tgz") from exc
