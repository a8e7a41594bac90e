"""Which images may carry identifying text burned into their pixels (header cleaning cannot remove it).

An image is suspect when ``BurnedInAnnotation`` is ``YES``, or when the attribute is absent or empty on a kind
of image that commonly has text burned in: ultrasound (``US``), external-camera photography (``XC``),
endoscopy (``ES``), secondary capture (modality ``SC`` or a Secondary Capture SOP class: screenshots, scanned
documents). Objects without pixel data are never suspect.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

BURNS_IN_MODALITIES = frozenset({"US", "XC", "ES", "SC"})
SECONDARY_CAPTURE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color Secondary Capture
    }
)
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def burned_in_reason(ds: Dataset) -> str | None:
    """Why ``ds`` may have identifying text in its pixels, or None when it is not suspect."""
    if not any(keyword in ds for keyword in PIXEL_KEYWORDS):
        return None
    flag = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if flag == "YES":
        return "BurnedInAnnotation is YES"
    if flag:
        return None
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality in BURNS_IN_MODALITIES:
        return f"BurnedInAnnotation is missing and modality {modality} commonly has burned-in text"
    if str(ds.get("SOPClassUID", "")) in SECONDARY_CAPTURE_CLASSES:
        return "BurnedInAnnotation is missing on a Secondary Capture image (screenshot or scanned document)"
    return None
