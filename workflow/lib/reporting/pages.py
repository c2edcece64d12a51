"""HTML pages of the Snakemake report: each table with its caption, each audio example with players.

``snakemake --report`` shows a result marked ``report(...)`` by its type: an image inline, an ``.html`` file in a
frame, anything else (``.csv``, ``.wav``) only as a download. So a table is shown as a page written here from its
Markdown (the table and its caption, as the ``tables`` stages write them; :func:`table_page`), and an audio example
as a page of spectrograms, each with an ``<audio>`` player beside it (:func:`audio_page`). Pages are
self-contained: styles inline, files embedded as ``data:`` URIs. The report shows a page from a data URI too,
which Chromium refuses over 2 MB: a page must stay under 1.5 MB.

Example::

    >>> html = markdown_html("| Method | ins. |\\n|---|---|\\n| WAM-IG | 0.5 |\\n\\nTable 1: `reference` protocol.\\n")
    >>> "<th>Method</th>" in html, "<td>0.5</td>" in html, "<code>reference</code>" in html
    (True, True, True)
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from workflow.lib import files

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1e293b; margin: 16px 20px; }
h1 { font-size: 20px; margin: 0 0 6px; }
h2 { font-size: 15px; margin: 0 0 4px; }
p { max-width: 75em; margin: 6px 0 10px; }
p.files { color: #475569; font-size: 13px; }
.scroll { overflow-x: auto; margin: 8px 0 12px; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #cbd5e1; padding: 3px 7px; text-align: left; vertical-align: top; }
thead th { background: #e2e8f0; position: sticky; top: 0; }
tbody tr:nth-child(even) { background: #f8fafc; }
tbody th { font-weight: 600; white-space: nowrap; }
code { background: #f1f5f9; padding: 0 3px; border-radius: 3px; font-size: 12px; }
table.audio td { border: none; border-bottom: 1px solid #e2e8f0; padding: 8px; vertical-align: middle; }
table.audio img { display: block; max-width: 640px; width: 100%; height: auto; }
audio { width: 320px; }
"""


def _inline(text: str) -> str:
    """One line of Markdown as HTML: escaped, with `code` and **bold**."""
    text = html.escape(text, quote=False)
    text = re.sub(r"``(.+?)``|`([^`]+)`", lambda m: f"<code>{m.group(1) or m.group(2)}</code>", text)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> str:
    """A pipe table (header, ``|---|`` separator, rows) as HTML; the first column heads each row."""
    header, rows = _cells(lines[0]), [_cells(line) for line in lines[2:]]
    head = "".join(f"<th>{_inline(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<{'th' if j == 0 else 'td'}>{_inline(c)}</{'th' if j == 0 else 'td'}>"
                                    for j, c in enumerate(row)) + "</tr>\n" for row in rows)
    return f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table></div>\n'


def markdown_html(text: str) -> str:
    """The Markdown the stages write (pipe tables, paragraphs, ```code```, ``**bold**``) as HTML.

    Blocks are runs of lines separated by blank lines; a run of lines starting with ``|`` whose second line is a
    ``|---|`` separator is a table, any other run a paragraph."""
    out: list[str] = []
    block: list[str] = []

    def flush() -> None:
        while block:
            if block[0].lstrip().startswith("|") and len(block) > 1 and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+",
                                                                                      block[1].strip()):
                n = next((i for i, line in enumerate(block) if not line.lstrip().startswith("|")), len(block))
                out.append(_table(block[:n]))
                del block[:n]
            else:
                n = next((i for i, line in enumerate(block) if i and line.lstrip().startswith("|")), len(block))
                out.append("<p>" + "<br>\n".join(_inline(line) for line in block[:n]) + "</p>\n")
                del block[:n]

    for line in text.splitlines():
        if line.strip():
            block.append(line)
        else:
            flush()
    flush()
    return "".join(out)


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def page(title: str, body: str) -> str:
    """A self-contained HTML page: ``title`` as its heading, ``body`` (HTML) under it."""
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}</body>\n</html>\n")


def table_page(name: str, sources: Sequence[Path]) -> str:
    """The page of table ``name``: its Markdown (``.md`` among ``sources``: the table and its caption) or, without
    one, its CSV as a table, under the text of any ``.rst`` among ``sources`` (a description, as plain paragraphs);
    each ``.md`` and ``.csv`` linked for download."""
    sources = [Path(s) for s in sources]
    intro = "".join(markdown_html(s.read_text()) for s in sources if s.suffix == ".rst")
    sources = [s for s in sources if s.suffix != ".rst"]
    links = ", ".join(f'<a download="{html.escape(s.name)}" href="{data_uri(s.read_bytes(), _mime(s))}">'
                      f"{html.escape(s.name)}</a>" for s in sources)
    markdown = next((s for s in sources if s.suffix == ".md"), None)
    if markdown is not None:
        body = markdown_html(markdown.read_text())
    else:
        import pandas as pd

        csv = next(s for s in sources if s.suffix == ".csv")
        body = '<div class="scroll">' + pd.read_csv(csv, keep_default_na=False).to_html(index=False, border=0) \
            + "</div>\n"
    return page(name, f'<p class="files">Files: {links}</p>\n{intro}{body}')


def _mime(path: Path) -> str:
    return {".csv": "text/csv", ".md": "text/markdown", ".tex": "text/x-tex", ".wav": "audio/wav"}.get(
        path.suffix, "application/octet-stream")


@dataclass(frozen=True)
class AudioRow:
    """One row of an audio page: a spectrogram (``png``, bytes), a ``heading`` and ``text`` beside it and, when
    ``sound`` (an audio file's bytes, of type ``mime``) is given, a player of the signal the spectrogram shows
    (``file``: where the signal is written)."""

    heading: str
    png: bytes
    sound: bytes | None = None
    mime: str = "audio/mpeg"
    text: str = ""
    file: str = ""


def audio_page(title: str, intro: str, rows: Sequence[AudioRow]) -> str:
    """A page of ``rows``: each spectrogram with its heading, text and ``<audio>`` player beside it."""
    cells = []
    for row in rows:
        player = (f'<audio controls preload="metadata" src="{data_uri(row.sound, row.mime)}"></audio>'
                  if row.sound is not None else "<p>(no recording of this signal)</p>")
        file = f'<p class="files">{html.escape(row.file)}</p>' if row.file else ""
        cells.append(f'<tr><td><img alt="{html.escape(row.heading)}" src="{data_uri(row.png, "image/png")}"></td>'
                     f"<td><h2>{html.escape(row.heading)}</h2><p>{html.escape(row.text)}</p>{file}{player}</td></tr>")
    return page(title, f"<p>{_inline(intro)}</p>\n<table class=\"audio\">\n" + "\n".join(cells) + "\n</table>\n")


def figure_png(fig) -> bytes:
    """A :class:`matplotlib.figure.Figure` as PNG bytes (no timestamp)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def write_table_page(name: str, sources: Sequence[Path], out: Path) -> Path:
    return files.write_text(out, table_page(name, sources))
