"""Key images cited in reports: "2.1 cm nodule in the right lower lobe (series 2, image 34)".

Radiologists cite the image that shows a measured lesion best. A citation belongs to the findings asserted in
its sentence, so the report says not only that a CT shows a nodule but on which slice. Image numbers count the
slices of the axial series from the head (image 1 is the most superior slice), as a viewer shows the series
sorted by position; the series number is read past.
"""

from __future__ import annotations

import re

from medvl.text.sentences import sentence_spans

# "image 34", "img 34", "im 34", "im. 34", "image #34", "image no. 34" (a "series 2," before it is skipped).
_CITATION = re.compile(r"\b(?:image|img|im)\b\.?\s*(?:#|no\.?\s*)?(\d{1,4})\b", re.IGNORECASE)


def cited_images(text: str) -> list[tuple[int, int]]:
    """``(character offset, image number)`` of every image citation in ``text`` (numbers from 1)."""
    return [(match.start(), int(match.group(1))) for match in _CITATION.finditer(text) if int(match.group(1)) > 0]


def sentence_key_images(text: str) -> list[tuple[int, int, int]]:
    """``(start, end, image number)`` of each sentence of ``text`` that cites an image (its first citation)."""
    citations = cited_images(text)
    if not citations:
        return []
    cited = []
    for start, end in sentence_spans(text):
        numbers = [number for offset, number in citations if start <= offset < end]
        if numbers:
            cited.append((start, end, numbers[0]))
    return cited
