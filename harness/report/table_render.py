"""A group table as Markdown (printed by `pdl-bench table`), LaTeX and CSV files under results/tables/.

The cells come from harness.render (the same as bench's and the HTML report's); this module adds
what belongs to a group: the caption, the footnotes, the ablation table and the file names.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.io import write_text_atomic
from harness.numbers import format_value
from harness.render.cells import Grid, Row, arm_grid
from harness.render.latex import latex_table
from harness.render.markdown import markdown_table
from harness.report.collect import Missing, group_stems
from harness.report.tables import GroupTable

LEGEND = "↑/↓: higher/lower is better; bold: best mean per metric. "


def caption(table: GroupTable) -> str:
    g = table.group
    return f"{g.name}: {g.budget()}; seeds {', '.join(map(str, g.seeds))}"


def footnote_text(table: GroupTable) -> str:
    s = "Δ = arm − CE of the same seed; 95% paired bootstrap CI over test examples; p: two-sided paired bootstrap."
    return " ".join([s, *table.notes])


def ablation_grid(frame: pd.DataFrame) -> Grid:
    """The wide ablation table (mean over seeds per option set): numbers in the tables' format."""
    rows = [Row([format_value(v) if isinstance(v, float) else str(v) for v in row])
            for row in frame.itertuples(index=False)]
    return Grid([str(c) for c in frame.columns], [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns], rows)


def to_markdown(table: GroupTable) -> str:
    lines = [f"### {caption(table)}", "", markdown_table(arm_grid(table.rows)),
             "", LEGEND + footnote_text(table)]
    if table.ablation is not None:
        lines += ["", f"#### Ablation over loss options ({table.group.name}), mean over seeds",
                  "", markdown_table(ablation_grid(table.ablation))]
    return "\n".join(lines)


def to_latex(table: GroupTable) -> str:
    """A booktabs table (needs \\usepackage{booktabs}); a rule between metrics."""
    return latex_table(arm_grid(table.rows), f"{caption(table)}. {footnote_text(table)}")


def missing_markdown(missing: list[Missing]) -> str:
    if not missing:
        return ""
    lines = ["Missing or partial points (not in the tables):", ""]
    lines += [f"- `{m.path}`: {m.reason}" for m in missing]
    return "\n".join(lines)


def render_markdown(tables: list[GroupTable], missing: list[Missing]) -> str:
    parts = [to_markdown(t) for t in tables]
    if missing:
        parts.append(missing_markdown(missing))
    return "\n\n".join(parts) + "\n"


def write_tables(tables: list[GroupTable], missing: list[Missing], out_dir: Path) -> list[Path]:
    """CSV (tidy numbers), LaTeX (booktabs) and Markdown per group, plus all groups in one CSV."""
    out_dir = Path(out_dir)
    stems = group_stems([t.group for t in tables])
    written = []
    for table in tables:
        stem = stems[table.group.key]  # may contain dots (qwen2.5-0.5b): append, never with_suffix
        outputs = {
            out_dir / f"{stem}.csv": table.main.to_csv(index=False),
            out_dir / f"{stem}.tex": to_latex(table),
            out_dir / f"{stem}.md": to_markdown(table) + "\n",
        }
        if table.ablation is not None:
            outputs[out_dir / f"{stem}__ablation.csv"] = table.ablation.to_csv(index=False)
        for path, text in outputs.items():
            write_text_atomic(path, text)
            written.append(path)
    everything = pd.concat([t.main for t in tables], ignore_index=True)
    write_text_atomic(out_dir / "all_groups.csv", everything.to_csv(index=False))
    write_text_atomic(out_dir / "missing.csv",
                      pd.DataFrame([{"path": str(m.path), "reason": m.reason} for m in missing],
                                   columns=["path", "reason"]).to_csv(index=False))
    written += [out_dir / "all_groups.csv", out_dir / "missing.csv"]
    return written
