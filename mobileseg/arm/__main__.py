"""``python -m mobileseg.arm MODEL IMAGES.npy OUT_DIR [--threads N] [--every_output]``: the runner's command,
the half of the ARM check that runs inside the emulated aarch64 python (`mobileseg.arm.runner` holds what it does).
Bad input: one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from mobileseg.arm.runner import OUTPUTS, REPORT, TENSORS, run_every_output, run_model


def main(argv: list[str] | None = None) -> int:
    """``python -m mobileseg.arm MODEL IMAGES.npy OUT_DIR``: see the module doc; returns the exit code."""
    parser = argparse.ArgumentParser(prog="mobileseg.arm", description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("images")
    parser.add_argument("out_dir")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--every_output", action="store_true",
                        help=f"write every output tensor of the first image to OUT_DIR/{TENSORS}")
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir)
    try:
        images = np.load(args.images)
        if args.every_output:
            np.savez(out_dir / TENSORS, **run_every_output(args.model, images[0], args.threads))
            return 0
        outputs, report = run_model(args.model, images, args.threads)
    except (OSError, ValueError, IndexError) as error:  # ModelError is a ValueError
        print(f"mobileseg.arm: error: {error}", file=sys.stderr)
        return 2
    np.save(out_dir / OUTPUTS, outputs)
    (out_dir / REPORT).write_text(json.dumps(report), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
