"""Open the fixture report in headless Chromium: no console error, every image decodes, not blank.

Driven with Chromium's own command line (no driver download is possible here):
``--dump-dom`` on a copy of the report with a small probe script that writes its findings
into the DOM, and ``--screenshot`` with ``--enable-logging=stderr`` on the report itself,
whose console must stay silent (the report has no scripts, so any console line is an error).
Skipped only when Chromium is absent outside CI; in CI (``CI`` set) a missing browser fails.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unetgan_bench.reports.render import render_report

pytestmark = pytest.mark.browser

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # Any host name resolves to nothing: a stray network request could not succeed silently.
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
# Runs before the page's own content; records errors and checks images once everything has loaded.
PROBE = """<script>
window.__probe = {errors: []};
window.addEventListener("error", e => window.__probe.errors.push("error: " + (e.message || e.target.src || e.type)), true);
const originalError = console.error;
console.error = (...args) => { window.__probe.errors.push("console.error: " + args.join(" ")); originalError(...args); };
window.addEventListener("load", () => {
  const images = [...document.images].map(img => ({complete: img.complete, width: img.naturalWidth, alt: img.alt}));
  const svgs = [...document.querySelectorAll("svg")].map(svg => {
    const box = svg.getBoundingClientRect();
    return {width: box.width, height: box.height};
  });
  const out = document.createElement("pre");
  out.id = "probe-result";
  out.textContent = JSON.stringify({errors: window.__probe.errors, images, svgs, height: document.body.scrollHeight});
  document.body.appendChild(out);
});
</script>"""


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None and Path("/usr/bin/chromium").exists():
        path = "/usr/bin/chromium"
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (required in CI: apt-get install -y chromium)")
        pytest.skip("chromium is not installed")
    return path


def _run(args: list[str], tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{name}"  # a fresh profile per launch: nothing carried over
    profile.mkdir()
    return subprocess.run(
        [_chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("browser") / "run_small"
    shutil.copytree(FIXTURE, run_dir)
    return render_report(run_dir, exports=False)


def _probe(page: Path, tmp_path: Path, name: str) -> dict:
    """Open a copy of ``page`` with the probe script in headless Chromium; the probe's findings."""
    probe = tmp_path / f"probe-{name}.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    done = _run(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path, name)
    match = re.search(r'<pre id="probe-result">(.*?)</pre>', done.stdout, re.S)
    assert match, f"probe did not run; chromium exit {done.returncode}: {done.stderr[-2000:]}"
    return json.loads(
        match.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )


def test_images_decode_and_no_script_errors(report, tmp_path):
    result = _probe(report, tmp_path, "dom")
    assert result["errors"] == []
    assert len(result["images"]) == 4
    for image in result["images"]:
        assert image["complete"] and image["width"] > 0, image
    assert len(result["svgs"]) == 3
    for svg in result["svgs"]:
        assert svg["width"] > 100 and svg["height"] > 50, svg


def test_screenshot_is_not_blank_and_console_is_silent(report, tmp_path):
    shot = tmp_path / "report.png"
    done = _run(
        ["--enable-logging=stderr", "--v=0", "--window-size=1200,2400", f"--screenshot={shot}", report.as_uri()],
        tmp_path,
        "shot",
    )
    assert shot.is_file(), f"no screenshot; chromium exit {done.returncode}: {done.stderr[-2000:]}"
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == []
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2400, 1200)
    # A rendered page has text, tables and a chart: a fair share of pixels that are not background.
    assert pixels.std() > 10
    assert (pixels < 200).mean() > 0.01


def test_history_trend_page_renders_without_errors(tmp_path):
    from unetgan_bench.bench.history.store import add_run
    from unetgan_bench.bench.history.trend import write_trend

    db = tmp_path / "h.sqlite"
    for name, commit in (("r1", "a"), ("r2", "b")):
        run_dir = tmp_path / name
        shutil.copytree(FIXTURE, run_dir)
        manifest = json.loads((run_dir / "manifest.json").read_text())
        (run_dir / "manifest.json").write_text(json.dumps({**manifest, "commit": commit * 40, "dirty": False}))
        render_report(run_dir, exports=False)  # so the trend page has reports to link
        add_run(run_dir, db)
    page = write_trend(tmp_path / "trend", db)
    result = _probe(page, tmp_path, "trend")
    assert result["errors"] == []
    assert len(result["svgs"]) >= 2
    for svg in result["svgs"]:
        assert svg["width"] > 100 and svg["height"] > 50, svg
    assert "../r1/report.html" in page.read_text()  # points and rows link their run's report, relative to the page
