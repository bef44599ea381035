"""Running ``python -m mobileseg.latency`` in a subprocess, as a user does, for the CLI tests."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO = str(REPO / "search_space" / "demo.yaml")
# a small measurement budget: the tests check the flow, not the figures
FAST = ["--max_seconds", "0.2", "--min_runs", "10", "--warmup", "2", "--noprogress"]

# five blocks (the head accepts one of the three stem widths): enough to stop a build half way
SMALL_SPACE = """
name: small
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, stride: 2}
      - {op: conv, width: {choice: [8, 12, 16]}, stride: 2}
head: {op: light, inputs: [{branch: main}], width: 8}
"""


def cli(*args, timeout=900):
    """Run the CLI with these arguments from the repository root; the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "mobileseg.latency", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
