"""BenchX's public chest X-ray datasets: one loader module per dataset, registered on import."""

from benchx.datasets.public import (
    chexpert,  # noqa: F401
    covidx,  # noqa: F401
    iu_xray,  # noqa: F401
    mimic_cxr,  # noqa: F401
    nih_cxr14,  # noqa: F401
    object_cxr,  # noqa: F401
    rsna_pneumonia,  # noqa: F401
    siim_acr,  # noqa: F401
    tbx11k,  # noqa: F401
    vindr_cxr,  # noqa: F401
)
