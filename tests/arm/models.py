"""Tiny segmentation files for the ARM tests: the tiny network of `tests.tiny_segmenters` with random
weights (seeded), converted in the test to int8 (the export's XNNPACK rewrite included) and fp32,
and `arm_root`, which skips a test when the arm64 root is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobileseg.arm.root import ArmRoot, ArmRootError, find_root

INPUT_SIZE = (32, 48)
NUM_CLASSES = 5


def write_models(folder: Path, seed: int = 0) -> dict[str, Path]:
    """``{"int8": ..., "fp32": ...}`` files of the tiny network with weights from ``seed``."""
    import keras

    from mobileseg.arch import builder
    from mobileseg.deploy import tflite_convert
    from tests import tiny_segmenters

    keras.utils.set_random_seed(seed)
    model = builder.build_model(tiny_segmenters.GENOTYPE, NUM_CLASSES, INPUT_SIZE, batch_size=1)
    images = tflite_convert.random_representative([(1, *INPUT_SIZE, 3)], num_samples=4, low=0.0, high=255.0)
    paths = {}
    for mode in ("int8", "fp32"):
        paths[mode] = folder / f"tiny_{seed}_{mode}.tflite"
        paths[mode].write_bytes(tflite_convert.convert(model, mode, representative=images))
    return paths


def arm_root() -> ArmRoot:
    """The arm64 root, or skip the test naming what is missing (``make arm_root`` makes it)."""
    try:
        return find_root()
    except ArmRootError as error:
        pytest.skip(str(error))
