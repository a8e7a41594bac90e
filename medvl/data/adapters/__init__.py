"""Source adapters by name: :data:`ADAPTERS` maps each source of ``medvl ingest`` to its adapter class.

The contract is :class:`medvl.data.adapters.base.SourceAdapter`; a hospital layout of one's own is added with
``ADAPTERS["my-pacs"] = MyAdapter`` before ingesting.
"""

from __future__ import annotations

from medvl.data.adapters.base import SourceAdapter
from medvl.data.adapters.chexpert import CheXpertAdapter
from medvl.data.adapters.covid_cxr import CovidCxrAdapter
from medvl.data.adapters.covidx import CovidxAdapter
from medvl.data.adapters.ct_rate import CtRateAdapter
from medvl.data.adapters.dicom_folder import DicomFolderAdapter
from medvl.data.adapters.iu_xray import IuXrayAdapter
from medvl.data.adapters.mimic_cxr import MimicCxrAdapter
from medvl.data.adapters.nih_cxr14 import NihCxr14Adapter
from medvl.data.adapters.object_cxr import ObjectCxrAdapter
from medvl.data.adapters.phantom import PhantomAdapter
from medvl.data.adapters.rsna_pneumonia import RsnaPneumoniaAdapter
from medvl.data.adapters.siim_acr import SiimAcrAdapter
from medvl.data.adapters.tbx11k import Tbx11kAdapter
from medvl.data.adapters.vindr_cxr import VindrCxrAdapter

ADAPTERS: dict[str, type[SourceAdapter]] = {
    cls.name: cls
    for cls in (
        CheXpertAdapter, CovidCxrAdapter, CovidxAdapter, CtRateAdapter, DicomFolderAdapter, IuXrayAdapter,
        MimicCxrAdapter, NihCxr14Adapter, ObjectCxrAdapter, PhantomAdapter, RsnaPneumoniaAdapter, SiimAcrAdapter,
        Tbx11kAdapter, VindrCxrAdapter,
    )
}  # fmt: skip


def get_adapter(name: str) -> type[SourceAdapter]:
    """The adapter class of source ``name``; the error lists the known names."""
    if name not in ADAPTERS:
        raise KeyError(f"unknown source '{name}'; known sources: {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[name]
