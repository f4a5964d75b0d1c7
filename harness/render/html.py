"""Grid -> an HTML <table> (the report page); every cell is escaped, number columns get class "num"."""

from __future__ import annotations

from html import escape

from harness.render.cells import Grid


def html_table(grid: Grid) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in grid.headers)
    body = []
    for row in grid.rows:
        tds = []
        for j, (cell, right) in enumerate(zip(row.cells, grid.right)):
            text = "" if grid.grouped and j == 0 and not row.block_start else escape(cell)
            text = f"<strong>{text}</strong>" if j in row.bold else text
            tds.append(f'<td class="num">{text}</td>' if right else f"<td>{text}</td>")
        row_class = ' class="block-start"' if grid.grouped and row.block_start else ""
        body.append(f"<tr{row_class}>{''.join(tds)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
