"""Render a report built from a synthetic results tree in headless Chromium and check the screenshot.

Usage: .venv/bin/python scripts/check_report_browser.py [--keep DIR]
Needs Debian's chromium (bash scripts/install_chromium.sh, as root). Exit 0 when the page rendered
to a non-trivial PNG; the screenshot path is printed so a person can look at it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHROMIUM = "/usr/bin/chromium"
MIN_PNG_BYTES = 20_000  # a blank 1280x2000 page compresses to a few kB


def screenshot(html: Path, png: Path, profile: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    command = [
        shutil.which("chromium") or CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", f"--screenshot={png}", "--window-size=1280,2000", html.resolve().as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def distinct_colours(png: Path) -> int:
    """How many colours the screenshot uses: a page with tables and plots uses hundreds."""
    import matplotlib.image

    pixels = matplotlib.image.imread(png)
    flat = (pixels[..., :3].reshape(-1, 3) * 255).astype("uint8")
    return len({tuple(p) for p in flat[:: max(1, len(flat) // 200_000)]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the tree, report and screenshot here (kept)")
    args = parser.parse_args()
    if not (shutil.which("chromium") or Path(CHROMIUM).exists()):
        print("chromium not found: bash scripts/install_chromium.sh (as root)", file=sys.stderr)
        return 2
    import matplotlib

    matplotlib.use("Agg")
    from harness.report.collect import collect
    from harness.report.html import write_report
    from harness.report.synthetic import demo_tokenizer_loader, demo_tree

    work = args.keep or Path(tempfile.mkdtemp(prefix="pdl-report-check-"))
    work.mkdir(parents=True, exist_ok=True)
    results = demo_tree(work / "results")
    html = write_report(collect(results), results / "report.html", tokenizer_loader=demo_tokenizer_loader)
    png = work / "report.png"
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        done = screenshot(html, png, Path(profile))
    if done.returncode != 0 or not png.is_file():
        print(f"chromium failed (exit {done.returncode}):\n{done.stderr[-2000:]}", file=sys.stderr)
        return 1
    size, colours = png.stat().st_size, distinct_colours(png)
    print(f"report: {html}\nscreenshot: {png} ({size} bytes, {colours} colours)")
    if size < MIN_PNG_BYTES or colours < 50:
        print("screenshot looks empty", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
