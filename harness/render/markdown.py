"""Grid -> GitHub Markdown pipe table (bench comparisons, `table` output and its .md files)."""

from __future__ import annotations

from harness.render.cells import Grid


def markdown_table(grid: Grid) -> str:
    lines = ["| " + " | ".join(grid.headers) + " |",
             "|" + "|".join("---:" if right else "---" for right in grid.right) + "|"]
    for row in grid.rows:
        cells = [f"**{cell}**" if j in row.bold else cell for j, cell in enumerate(row.cells)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
