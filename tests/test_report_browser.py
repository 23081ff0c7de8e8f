"""The HTML report in a real headless browser: no console errors, every image decodes, it renders.

Runs only where Debian's Chromium is installed (``apt-get install chromium``; ``.ci/run`` does it
on CI). A probe script is appended to a copy of the report: after the page's ``load`` event it
records, on ``<body>``, how many images decoded and any uncaught error, and ``--dump-dom`` hands
the DOM back. Console messages come from ``--enable-logging=stderr``. A broken page is checked
first so the harness is known to catch what it looks for.

Set ``BAYES_SCALING_SCREENSHOT_DIR`` to keep the screenshot (``report.png``) for a human to look at.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="headless Chromium (/usr/bin/chromium) not installed")

PROBE = """
<script>
window.addEventListener('error', (e) => { document.body.setAttribute('data-error', String(e.message || e)); });
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter((i) => i.complete && i.naturalWidth > 0);
  document.body.setAttribute('data-images', String(imgs.length));
  document.body.setAttribute('data-images-loaded', String(ok.length));
  document.body.setAttribute('data-min-width', String(Math.min(...imgs.map((i) => i.naturalWidth))));
});
</script>
"""


def _chromium(url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-extensions", f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr",
            "--v=0", "--virtual-time-budget=5000", *extra, url]
    return subprocess.run(args, check=False, capture_output=True, text=True, timeout=120)


def _probe(page: Path, tmp: Path) -> tuple[dict[str, str], list[str]]:
    probed = tmp / f"probed-{page.name}"
    text = page.read_text()
    probed.write_text(text.replace("</body>", PROBE + "</body>"))
    run = _chromium(probed.as_uri(), tmp, "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", run.stdout)
    assert body, run.stdout[:500]
    attrs = dict(re.findall(r'data-([\w-]+)="([^"]*)"', body.group(1)))
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    return attrs, console


def test_the_harness_catches_a_broken_page(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img src="missing.png">'
                    '<img src="data:image/png;base64,AAAA"><script>console.error("boom")</script></body></html>')
    attrs, console = _probe(page, tmp_path)
    assert attrs["images"] == "2" and attrs["images-loaded"] == "0"
    assert any('"boom"' in line for line in console)


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    from fits_for_reports import synthetic_fit

    from bayes_scaling import report

    path = tmp_path_factory.mktemp("browser") / "report.html"
    return report.write_report(synthetic_fit(), path, compute=1e24)


def test_report_renders_without_console_errors_and_images_load(report_file, tmp_path):
    attrs, console = _probe(report_file, tmp_path)
    assert console == []
    assert "error" not in attrs
    assert int(attrs["images"]) >= 4
    assert attrs["images-loaded"] == attrs["images"]
    assert int(attrs["min-width"]) >= 300


def test_screenshot_shows_the_report(report_file, tmp_path):
    from matplotlib import image

    shot = tmp_path / "report.png"
    run = _chromium(report_file.as_uri(), tmp_path, "--hide-scrollbars", "--window-size=1280,2400",
                    f"--screenshot={shot}")
    assert run.returncode == 0, run.stderr[-2000:]
    pixels = image.imread(shot)
    assert pixels.shape[:2] == (2400, 1280)
    # not a blank page: the figures put many distinct colours on it
    assert np.unique((pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0).shape[0] > 500
    keep = os.environ.get("BAYES_SCALING_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")
