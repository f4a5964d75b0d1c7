"""Tables, figures and an HTML report rebuilt from the results/ tree alone (CPU, no model needed).

collect: read and group result points; tables: mean ± std over seeds and paired deltas vs CE;
plots: matplotlib figures; html: one self-contained report page. docs/reporting.md explains each.
"""
