"""Source adapters by name: :data:`ADAPTERS` maps each source of ``medvl ingest`` to its adapter class.

The contract is :class:`medvl.data.adapters.base.SourceAdapter`; a hospital layout of one's own is added with
``ADAPTERS["my-pacs"] = MyAdapter`` before ingesting.
"""

from __future__ import annotations

from medvl.data.adapters.base import SourceAdapter
from medvl.data.adapters.chexpert import CheXpertAdapter
from medvl.data.adapters.covid_cxr import CovidCxrAdapter
from medvl.data.adapters.ct_rate import CtRateAdapter
from medvl.data.adapters.dicom_folder import DicomFolderAdapter
from medvl.data.adapters.iu_xray import IuXrayAdapter
from medvl.data.adapters.mimic_cxr import MimicCxrAdapter
from medvl.data.adapters.phantom import PhantomAdapter

ADAPTERS: dict[str, type[SourceAdapter]] = {
    cls.name: cls
    for cls in (
        CheXpertAdapter, CovidCxrAdapter, CtRateAdapter, DicomFolderAdapter, IuXrayAdapter, MimicCxrAdapter,
        PhantomAdapter,
    )
}  # fmt: skip


def get_adapter(name: str) -> type[SourceAdapter]:
    """The adapter class of source ``name``; the error lists the known names."""
    if name not in ADAPTERS:
        raise KeyError(f"unknown source '{name}'; known sources: {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[name]
