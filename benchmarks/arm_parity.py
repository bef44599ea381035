"""Benchmark (issue 19, item 2): do the files that ship give the same output on aarch64 LiteRT?

Every reference network (``search_space/references/``) and every searched network whose genotype
is committed (``benchmarks/results/genotypes/``: the genotypes of the searched front of
pareto_camvid.json and search_camvid.json were lost with their run folders, see their
``genotypes_lost``; the committed ones are the 12 default-space networks of proxy_rank_camvid)
is built at 360x480 with 12 classes and seeded random weights (output agreement does not need
trained ones), converted as export ships it (`mobileseg.deploy.packaging.convert`: uint8 image in,
logits out; int8 post-training quantized on ``--calibration`` CamVid train images, with the
XNNPACK rewrites; and fp32), and run on ``--images`` CamVid test images here and in LiteRT's
aarch64 build under qemu-user (`mobileseg.arm.parity.check_file`, emulated CPU ``--cpu``).

Writes ``--out`` (default ``benchmarks/results/arm_parity.json``) after every file, so an
interrupted run resumes: ``{"rows": [{"network", "mode", "x86_partitions", "arm_partitions",
"class_map_agreement", "max_logit_diff_steps"}], "agrees": {...}, "command", "versions",
"machine", ...}``. With ``--sme_check`` the int8 files also run on ``-cpu max`` (SME advertised)
into ``sme_rows``.

Example (the arm64 root first: ``make arm_root``):
    python benchmarks/arm_parity.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CAMVID = Path("/work/shared/datasets/camvid")
SIZE = (360, 480)
NUM_CLASSES = 12
ROW_KEYS = ("network", "mode", "x86_partitions", "arm_partitions", "class_map_agreement", "max_logit_diff_steps")


def networks() -> list[tuple[str, Path]]:
    """(name, genotype file) of every reference network and every committed searched genotype."""
    from mobileseg.zoo import reference_files

    searched = sorted((ROOT / "benchmarks" / "results" / "genotypes").rglob("*.yaml"))
    return ([(path.stem, path) for path in reference_files()]
            + [(f"{path.parent.name}/{path.stem}", path) for path in searched])


def camvid_images(split: str, count: int) -> np.ndarray:
    """The first ``count`` images of ``split`` (sorted names) as float32 [count, 360, 480, 3]."""
    from PIL import Image

    paths = sorted((CAMVID / split).glob("*.png"))[:count]
    images = np.stack([np.asarray(Image.open(path).convert("RGB"), np.float32) for path in paths])
    if images.shape[1:3] != SIZE:
        raise SystemExit(f"{CAMVID / split}: images of {images.shape[1:3]}, expected {SIZE}")
    return images


def convert(genotype: Path, mode: str, calibration: np.ndarray, seed: int) -> bytes:
    """The network with seeded random weights, converted as export ships it."""
    import keras

    from mobileseg.arch import builder, schema_io
    from mobileseg.deploy import packaging

    keras.utils.set_random_seed(seed)
    model = builder.build_model(schema_io.load(genotype), NUM_CLASSES, SIZE, batch_size=1)

    def representative():
        for image in calibration:
            yield [image[None]]

    return packaging.convert(model, mode, "logits", "uint8", representative if mode == "int8" else None)


def main() -> int:
    """Run the benchmark (see the module doc)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "arm_parity.json"))
    parser.add_argument("--images", type=int, default=2, help="CamVid test images each file runs on")
    parser.add_argument("--calibration", type=int, default=8, help="CamVid train images for int8 calibration")
    parser.add_argument("--modes", default="int8,fp32")
    parser.add_argument("--only", default=None, help="comma-separated network names (default: all)")
    parser.add_argument("--cpu", default=None, help="emulated CPU (default: mobileseg.arm.root.DEFAULT_CPU)")
    parser.add_argument("--sme_check", action="store_true", help="also run the int8 files on -cpu max")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from tqdm import tqdm

    from mobileseg.arm import parity
    from mobileseg.arm.root import DEFAULT_CPU, find_root
    from mobileseg.atomic_write import write_atomic
    from mobileseg.provenance import load_average, machine, versions

    root = find_root()
    cpu = args.cpu or DEFAULT_CPU
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    done = {(row["network"], row["mode"]): row for row in previous.get("detail", [])}
    sme_done = {row["network"]: row for row in previous.get("sme_rows", [])}
    images, calibration = camvid_images("test", args.images), camvid_images("train", args.calibration)
    chosen = networks()
    if args.only:
        names = set(args.only.split(","))
        chosen = [item for item in chosen if item[0] in names]
    result = {"command": "python benchmarks/arm_parity.py " + " ".join(sys.argv[1:]), "input_size": list(SIZE),
              "num_classes": NUM_CLASSES, "weights": f"random, keras seed {args.seed}",
              "inputs": f"the first {args.images} CamVid test images (sorted names)",
              "calibration": f"the first {args.calibration} CamVid train images", "cpu": cpu,
              "qemu": root.qemu_version(), "versions": versions(), "machine": machine(),
              "load_average_before": load_average()}
    started = time.time()
    for name, genotype in tqdm(chosen, desc="networks", unit="net"):
        for mode in args.modes.split(","):
            if (name, mode) in done and (mode != "int8" or not args.sme_check or name in sme_done):
                continue
            with tempfile.TemporaryDirectory(prefix="arm_parity_") as folder:
                path = Path(folder) / f"{name.replace('/', '_')}_{mode}.tflite"
                path.write_bytes(convert(genotype, mode, calibration, args.seed))
                if (name, mode) not in done:
                    row = parity.check_file(root, path, images, cpu=cpu)
                    done[(name, mode)] = {"network": name, "mode": mode, "genotype": str(genotype.relative_to(ROOT)),
                                          **{key: row[key] for key in row if key != "model"}}
                if mode == "int8" and args.sme_check and name not in sme_done:
                    row = parity.check_file(root, path, images, cpu="max")
                    sme_done[name] = {"network": name, "mode": mode, **{key: row[key] for key in ROW_KEYS[2:]},
                                      "arm_cpu": row["arm_cpu"]}
            detail = list(done.values())
            result.update(rows=[{key: row[key] for key in ROW_KEYS} for row in detail],
                          agrees={"files": len(detail), "agree": sum(row["agrees"] for row in detail),
                                  "same_partitions": sum(row["x86_partitions"] == row["arm_partitions"]
                                                         for row in detail)},
                          sme_rows=list(sme_done.values()), detail=detail,
                          seconds_this_run=round(time.time() - started), load_average_after=load_average())
            write_atomic(out, json.dumps(result, indent=1) + "\n")
    print(json.dumps(result.get("agrees"), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
