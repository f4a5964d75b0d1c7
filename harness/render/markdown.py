"""Grid -> GitHub Markdown pipe table (bench comparisons, `table` output and its .md files)."""

from __future__ import annotations

from html import escape

from harness.render.cells import Grid

# Characters that start inline Markdown (code, emphasis, links, tables, strikethrough, GitHub math).
INLINE_SPECIALS = "\\`*_[]|~$"


def markdown_table(grid: Grid) -> str:
    lines = ["| " + " | ".join(grid.headers) + " |",
             "|" + "|".join("---:" if right else "---" for right in grid.right) + "|"]
    for row in grid.rows:
        cells = [f"**{cell}**" if j in row.bold else cell for j, cell in enumerate(row.cells)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_text(text: str) -> str:
    """Text from a results file (a source, a reference, a model's output) as literal Markdown inline
    text: Markdown specials backslash-escaped, then `&`, `<`, `>` as HTML entities (so no tag or
    entity of the text is interpreted), line breaks as `<br>` (it may sit in a table cell)."""
    escaped = "".join(f"\\{ch}" if ch in INLINE_SPECIALS else ch for ch in str(text).strip())
    return "<br>".join(escape(line, quote=False) for line in escaped.splitlines()) if escaped else ""
