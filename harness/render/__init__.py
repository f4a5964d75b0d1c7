"""Renderers of comparison rows (harness.comparison): Markdown, LaTeX, HTML, terminal text and CSV.

cells.py turns rows into a Grid of formatted cells (the only place numbers become text, through
harness.numbers); each renderer only lays a Grid out. Nothing here computes a statistic.
"""
