"""`pdl-bench status`: where each recorded sweep stands."""

import json

from harness.report.options import add_results_argument

HELP = "each sweep's points: done, running (host, age), failed (the error), pending; and how to finish it"
DESCRIPTION = """\
One table per sweep recorded under --results-dir (`pdl-bench sweep` writes the sweep's point list
to <results>/.sweeps/<id>.json when it starts or submits), its points grouped as `pdl-bench table`
groups them (task, model and everything else that differs but loss, alpha and seed):
  done     metrics.json is there
  running  a live process holds the point's lock: its host, pid, SLURM job and for how long
  failed   the last run left error.json: its first line (the whole record is in the file)
  pending  not started, or interrupted (killed, cancelled, out of time: it resumes from its
           last checkpoint)
and the command that finishes the sweep (finished points are skipped; failed ones are retried).
A manifest that does not read (cut short, edited by hand) gets one line (`unreadable_manifests`
in --format json) and hides no other sweep.
Reads only small files and probes the locks: safe to run while the sweep runs, from any node.

examples:
  pdl-bench status
  pdl-bench status --results-dir /shared/results --format json
"""


def add_arguments(parser):
    add_results_argument(parser)
    parser.add_argument("--format", choices=["text", "json"], default="text",
                        help="text: tables for people (default); json: one object for scripts")


def run(args) -> int:
    from harness.report.status import render_text, status_json, sweep_statuses

    report = sweep_statuses(args.results_dir)
    if args.format == "json":
        print(json.dumps(status_json(report, args.results_dir), indent=2))
    else:
        print(render_text(report, args.results_dir))
    return 0
