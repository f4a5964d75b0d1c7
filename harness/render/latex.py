"""Grid -> a booktabs LaTeX table (needs \\usepackage{booktabs}), with a rule between metrics."""

from __future__ import annotations

from harness.render.cells import Grid

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_SYMBOLS = {"±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "Δ": r"$\Delta$", "−": "-"}


def latex_escape(text: str) -> str:
    out = "".join(_SPECIAL.get(ch, ch) for ch in str(text))
    for symbol, command in _SYMBOLS.items():
        out = out.replace(symbol, command)
    return out


def latex_table(grid: Grid, caption: str) -> str:
    spec = "".join("r" if right else "l" for right in grid.right)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape(h) for h in grid.headers) + r" \\", r"\midrule"]
    for i, row in enumerate(grid.rows):
        if grid.grouped and i and row.block_start:
            lines.append(r"\midrule")
        cells = []
        for j, cell in enumerate(row.cells):
            text = "" if grid.grouped and j == 0 and not row.block_start else latex_escape(cell)
            cells.append(rf"\textbf{{{text}}}" if j in row.bold else text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{latex_escape(caption)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"
