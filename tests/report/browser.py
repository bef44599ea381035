"""Load an HTML page in headless Chromium (Debian's ``chromium``) and report what the browser saw.

`load` copies the page with a probe added (an error listener first in ``<head>``, a script at
the end of ``<body>`` that runs at the ``load`` event), has Chromium dump the DOM, and returns
the probe's findings: the sections, every image with its decoded size, the script errors, and
every resource the page fetched. `screenshot` saves a PNG of the page as a browser draws it.
Both skip the calling test when Chromium is not installed (``.ci/system_packages.sh`` installs it).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND")
"""Headless, and no network: every host name fails to resolve."""

PROBE_HEAD = "<script>window.__errors = []; window.addEventListener('error', e => window.__errors.push(" \
             "String(e.message || (e.target && (e.target.src || e.target.outerHTML)))), true);</script>"
PROBE_BODY = """<script>window.addEventListener('load', () => {
  const found = {
    sections: [...document.querySelectorAll('section')].map(s => ({id: s.id, heading: s.querySelector('h2').textContent,
      missing: s.querySelectorAll('.missing').length, svgs: s.querySelectorAll('svg').length})),
    images: [...document.images].map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth,
      height: i.naturalHeight})),
    errors: window.__errors,
    resources: performance.getEntriesByType('resource').map(r => r.name)};
  const out = document.createElement('pre'); out.id = 'probe'; out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});</script>"""


def chromium() -> str:
    """The Chromium binary; skips the test when there is none."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("chromium is not installed (Debian package chromium; make test installs it as root)")
    return binary


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=180, check=False)


def load(page: Path, work: Path) -> dict:
    """What Chromium saw loading ``page`` (see the module docstring): ``sections``, ``images``, ``errors``,
    ``resources``."""
    text = page.read_text()
    probed = work / f"probed_{page.name}"
    probed.write_text(text.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", PROBE_BODY + "</body>", 1))
    done = _run(["--virtual-time-budget=10000", "--dump-dom", probed.as_uri()], work / "profile")
    match = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert match, f"chromium did not run the probe (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(match.group(1)))


def screenshot(page: Path, out: Path, work: Path, size: str = "1280,4000") -> Path:
    """Save a screenshot of ``page`` drawn in a ``size`` window to ``out``."""
    done = _run(["--hide-scrollbars", f"--window-size={size}", f"--screenshot={out}", page.as_uri()],
                work / "profile")
    assert out.is_file(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return out
