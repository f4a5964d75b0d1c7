"""One self-contained HTML page: tables, figures (embedded base64 PNG) and example generations.

No external URL, script or font: the file opens offline and can be mailed around. Every piece of
text from the results tree goes through html.escape.
"""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.io import write_text_atomic
from harness.report.collect import Collection, Group, Missing
from harness.report.plots import group_figures
from harness.report.tables import (
    HEADERS, GroupTable, TableSettings, TokenizerLoader, build_tables, caption, display_rows, fmt, footnote_text,
)

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 2px solid #ccc; } h3 { margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #e3e3e3; vertical-align: top; }
th { background: #f3f3f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.block-start td { border-top: 2px solid #bbb; }
.note { color: #555; font-size: 0.85em; max-width: 1100px; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.85em; }
.example { margin: 1em 0; } .example th { width: 11em; }
.example td { white-space: pre-wrap; }
.missing { color: #8a1f11; }
"""

FIGURE_CAPTIONS = {
    "diversity_vs_alpha": "Diversity and ROUGE against alpha; error bars: std over seeds; dashed line and "
                          "square: the CE arm (alpha = 0).",
    "quality_vs_diversity": "Quality/diversity trade-off, one point per arm.",
    "rare_tokens": "Share of generated tokens per training-frequency bucket (left) and its ratio to the "
                   "references' share (right).",
    "training_curves": "Training loss per arm (one panel per loss: their scales differ), and plain validation CE per arm when the task evaluates during training (training.eval_steps).",
}


def figure_png_base64(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def table_html(table: GroupTable) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in HEADERS)
    body = []
    for cells in display_rows(table):
        value = escape(cells["value"])
        if cells["best"]:
            value = f"<strong>{value}</strong>"
        row_class = ' class="block-start"' if cells["first_of_metric"] else ""
        tds = [f"<td>{escape(cells['metric']) if cells['first_of_metric'] else ''}</td>",
               f"<td>{escape(cells['arm'])}</td>", f'<td class="num">{value}</td>',
               f'<td class="num">{escape(cells["delta"])}</td>', f'<td class="num">{escape(cells["p"])}</td>',
               f'<td class="num">{escape(cells["seeds"])}</td>', f'<td class="num">{escape(cells["n"])}</td>']
        body.append(f"<tr{row_class}>{''.join(tds)}</tr>")
    note = escape("↑/↓: higher/lower is better; bold: best mean per metric. " + footnote_text(table))
    return (f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f'<p class="note">{note}</p>')


def frame_html(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = [f'<td class="num">{escape(fmt(v))}</td>' if isinstance(v, (float, np.floating))
                 else f"<td>{escape(str(v))}</td>" for v in row]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def pick_examples(group: Group, k: int, seed: int) -> tuple[int | None, list[dict[str, Any]]]:
    """k test examples (same id in every arm) drawn with a seeded RNG from the lowest common seed."""
    arms = group.arms()
    common_seeds = set.intersection(*(set(group.points_of(arm)) for arm in arms)) if arms else set()
    if not common_seeds or k < 1:
        return None, []
    run_seed = min(common_seeds)
    labels = group.labels()
    by_arm = {labels[arm]: {r["id"]: r for r in group.points_of(arm)[run_seed].generations()} for arm in arms}
    first = group.points_of(arms[0])[run_seed].generations()
    ids = [r["id"] for r in first if all(r["id"] in rows for rows in by_arm.values())]
    if not ids:
        return run_seed, []
    chosen = sorted(np.random.default_rng(seed).choice(len(ids), size=min(k, len(ids)), replace=False))
    examples = []
    for index in chosen:
        example_id = ids[index]
        outputs = {label: rows[example_id]["prediction"] for label, rows in by_arm.items()}
        row = by_arm[labels[arms[0]]][example_id]
        examples.append({"id": example_id, "source": row.get("source"), "reference": row["reference"],
                         "outputs": outputs})
    return run_seed, examples


def examples_html(group: Group, k: int, seed: int) -> str:
    run_seed, examples = pick_examples(group, k, seed)
    if not examples:
        return '<p class="note">No test example was generated by every arm with a common seed.</p>'
    parts = [f'<p class="note">{len(examples)} test examples drawn with numpy seed {seed} from training seed '
             f"{run_seed}; the same input id for every arm.</p>"]
    for ex in examples:
        rows = [f"<tr><th>input</th><td>{escape(ex['source'])}</td></tr>"] if ex.get("source") else []
        rows += [f"<tr><th>{escape(label)}</th><td>{escape(text)}</td></tr>" for label, text in ex["outputs"].items()]
        rows.append(f"<tr><th>reference</th><td>{escape(ex['reference'])}</td></tr>")
        parts.append(f'<table class="example"><caption>example id {escape(str(ex["id"]))}</caption>'
                     f"{''.join(rows)}</table>")
    return "".join(parts)


def provenance_html(group: Group) -> str:
    prov = next((p.provenance for p in group.points if p.provenance), {})
    items = []
    if prov.get("git"):
        items.append(f"git {prov['git']}")
    versions = prov.get("versions") or {}
    items += [f"{name} {version}" for name, version in sorted(versions.items())]
    device = prov.get("device")
    if device:
        items.append(f"device {device if isinstance(device, str) else ', '.join(f'{k}={v}' for k, v in device.items())}")
    if prov.get("precision"):
        items.append(f"precision {prov['precision']}")
    return f'<p class="note">{escape("; ".join(map(str, items)))}</p>' if items else ""


def missing_html(missing: list[Missing]) -> str:
    if not missing:
        return ""
    items = "".join(f"<li><code>{escape(str(m.path))}</code>: {escape(m.reason)}</li>" for m in missing)
    return f'<h2>Missing or partial points</h2><ul class="missing">{items}</ul>'


def render_report(collection: Collection, settings: TableSettings = TableSettings(), *,
                  tokenizer_loader: TokenizerLoader | None = None, n_examples: int = 3,
                  example_seed: int = 0) -> str:
    tables = build_tables(collection, settings, tokenizer_loader)
    n_points = sum(len(t.group.points) for t in tables)
    sections = [
        "<h1>pdl-bench report</h1>",
        f'<p class="note">Built from <code>{escape(str(collection.root))}</code>: {len(tables)} group(s), '
        f"{n_points} finished point(s), {len(collection.missing)} missing or partial. A group holds the runs "
        "that differ only in loss, loss options and seed.</p>",
    ]
    for table in tables:
        group = table.group
        sections.append(f"<h2>{escape(caption(table))}</h2>")
        sections.append(provenance_html(group))
        sections.append(table_html(table))
        if table.ablation is not None:
            sections.append("<h3>Ablation over loss options (mean over seeds)</h3>" + frame_html(table.ablation))
        for kind, fig in group_figures(group).items():
            sections.append(f'<figure><img alt="{escape(kind)}" src="data:image/png;base64,{figure_png_base64(fig)}">'
                            f"<figcaption>{escape(FIGURE_CAPTIONS.get(kind, kind))}</figcaption></figure>")
        sections.append("<h3>Example generations</h3>" + examples_html(group, n_examples, example_seed))
    sections.append(missing_html(collection.missing))
    body = "\n".join(s for s in sections if s)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>pdl-bench report</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def write_report(collection: Collection, path: Path, settings: TableSettings = TableSettings(), **kwargs) -> Path:
    write_text_atomic(Path(path), render_report(collection, settings, **kwargs))
    return Path(path)
