"""Source adapters (importing this package registers the built-in ones)."""

from medvl.data.adapters import (  # noqa: F401
    chexpert,
    covid_cxr,
    ct_rate,
    dicom_folder,
    iu_xray,
    mimic_cxr,
    phantom,
)
