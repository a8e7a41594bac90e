"""A self-contained HTML page: inline CSS, images embedded as base64 ``data:`` URIs, readable on a phone
(viewport width, images scale down, wide tables scroll sideways in their own box)."""

from __future__ import annotations

import base64
import html

CSS = """
:root { color-scheme: light dark; --muted: #777; --line: #8884; --shade: #8881; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 68rem;
       margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.25rem; border-bottom: 1px solid var(--line); margin-top: 2.2rem; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: .5rem 0 1rem; }
table { border-collapse: collapse; font-size: .85rem; font-variant-numeric: tabular-nums; }
th, td { padding: .25rem .6rem; text-align: left; white-space: nowrap; border-bottom: 1px solid var(--line); }
thead th { border-bottom: 2px solid var(--muted); }
tr.baseline td { background: var(--shade); }
tr.significant td { font-weight: 600; }
tr.at-chance td { color: var(--muted); }
img { max-width: 100%; height: auto; display: block; margin: .5rem 0 1rem; }
.legend, .note { font-size: .85rem; color: var(--muted); }
details { margin: .5rem 0 1rem; } summary { cursor: pointer; }
@media (max-width: 40rem) { body { padding: .5rem; font-size: 14px; } th, td { padding: .2rem .4rem; } }
"""


def image(png: bytes, alt: str) -> str:
    """An ``<img>`` holding the PNG itself."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def page(title: str, body: list[str]) -> str:
    """The HTML document around ``body`` (HTML fragments)."""
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
