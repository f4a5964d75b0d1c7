"""Grid -> plain aligned text for a terminal (`pdl-bench score`): padded columns, a dashed rule under the header."""

from __future__ import annotations

from harness.render.cells import Grid


def text_table(grid: Grid) -> str:
    table = [grid.headers] + [row.cells for row in grid.rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(grid.headers))]
    lines = ["  ".join(c.rjust(w) if right else c.ljust(w) for c, w, right in zip(r, widths, grid.right))
             for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
