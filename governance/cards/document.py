"""A model card as a list of blocks (headings, paragraphs, lists, tables, images), rendered to Markdown and HTML.

Keeping the content format-free means the Markdown and the HTML card always say the same thing.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

_TEMPLATE = Path(__file__).with_name("template.html")


@dataclass(frozen=True)
class Heading:
    """A section title (``level`` 1 or 2)."""

    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of plain text."""

    text: str


@dataclass(frozen=True)
class Bullets:
    """A bulleted list of plain-text items."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table of plain-text cells."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    """An image stored beside the card (``path`` relative to the card's folder) with a caption."""

    path: str
    caption: str


Block = Heading | Paragraph | Bullets | Table | Image


@dataclass
class CardDocument:
    """The card's title and blocks."""

    title: str
    blocks: list[Block] = field(default_factory=list)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: CardDocument) -> str:
    """The card as GitHub-flavoured Markdown."""
    lines = [f"# {doc.title}", ""]
    for block in doc.blocks:
        if isinstance(block, Heading):
            lines += ["#" * (block.level + 1) + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            lines += [block.text, ""]
        elif isinstance(block, Bullets):
            lines += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            lines.append("| " + " | ".join(_md_cell(h) for h in block.header) + " |")
            lines.append("|" + "---|" * len(block.header))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            lines.append("")
        else:
            lines += [f"![{_md_cell(block.caption)}]({block.path})", "", f"*{block.caption}*", ""]
    return "\n".join(lines)


def _html_block(block: Block) -> str:
    esc = html.escape
    if isinstance(block, Heading):
        return f"<h{block.level + 1}>{esc(block.text)}</h{block.level + 1}>"
    if isinstance(block, Paragraph):
        return f"<p>{esc(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{esc(h)}</th>" for h in block.header)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return (f'<figure><img src="{esc(block.path, quote=True)}" alt="{esc(block.caption, quote=True)}">'
            f"<figcaption>{esc(block.caption)}</figcaption></figure>")


def to_html(doc: CardDocument) -> str:
    """The card as a standalone HTML page (``template.html``, every text escaped)."""
    body = "\n".join(_html_block(block) for block in doc.blocks)
    return Template(_TEMPLATE.read_text()).substitute(title=html.escape(doc.title), body=body)
