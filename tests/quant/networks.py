"""Tiny networks for the quantization and export tests: every block the builder has, at 32x32."""

from __future__ import annotations

import keras
import numpy as np

ALL_OPS_YAML = """
name: all_ops
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, kernel: 3, stride: 2, act: hard_swish}
      - {op: mbconv, width: 8, kernel: 3, stride: 1, expansion: 2.0, se: true, act: relu}
      - {op: zoomed_conv, width: 16, kernel: 3, stride: 2}
      - {op: mbconv, width: 16, kernel: 3, stride: 2, expansion: 2.0}
      - {op: sea_attention, heads: 2, key_dim: 4, mlp_ratio: 2.0, act: relu6}
      - {op: mhsa, heads: 1, key_dim: 4}
      - {op: fuse, context: {branch: low, cell: -1}, width: 16, mode: gate}
      - {op: cross_attention, context: {branch: low, cell: -1}, context_size: 2}
      - {op: skip}
  - name: low
    source: {branch: main, cell: 3}
    cells:
      - {op: patch_embed, width: 16, kernel: 3, stride: 2}
      - {op: efficient_attention, heads: 2, sr_ratio: 1, mlp_ratio: 2.0, tome_mode: kv_bsm, tome_ratio: 0.5}
      - {op: gfa_attention, heads: 2, units: 8}
      - {op: fuse, context: {branch: main, cell: 3}, width: 16, mode: sum}
head: {op: light, inputs: [{branch: main}, {branch: low}], width: 16}
"""
"""Every cell op of the genotype schema and a two-input light head, 1/8 logits at 32x32."""


TOKEN_MERGING = ", tome_mode: kv_bsm, tome_ratio: 0.5"
"""The token merging of `ALL_OPS_YAML`'s SegFormer block (a switch on a trained network, not a searched op)."""


def all_ops_model(num_classes: int = 5, input_size=(32, 32), seed: int = 0, token_merging: bool = True) -> keras.Model:
    """The `ALL_OPS_YAML` network with lively statistics: batch-norm moving statistics, scales
    and biases drawn at random (a freshly built model has zero-scaled projections, zero biases
    and unit statistics, which hide rounding and make degenerate ranges). ``token_merging=False``
    leaves out `TOKEN_MERGING`: every op a searched network can have, and only those."""
    from mobileseg.arch import builder, schema_io

    keras.utils.set_random_seed(seed)
    text = ALL_OPS_YAML if token_merging else ALL_OPS_YAML.replace(TOKEN_MERGING, "")
    model = builder.build_model(schema_io.loads(text), num_classes, input_size)
    randomize_statistics(model, seed)
    return model


def randomize_statistics(model: keras.Model, seed: int = 0) -> None:
    """Draw moving variances, means, BN scales, biases and residual gains at random (in place)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        path = weight.path
        if "moving_variance" in path:
            weight.assign(rng.uniform(0.5, 2.0, weight.shape))
        elif "moving_mean" in path:
            weight.assign(rng.uniform(-0.3, 0.3, weight.shape))
        elif path.endswith("gamma"):
            weight.assign(rng.uniform(0.5, 1.5, weight.shape))
        elif path.endswith("bias") or path.endswith("beta"):
            weight.assign(rng.normal(0.0, 0.1, weight.shape))


def images(count: int, size=(32, 32), seed: int = 0) -> np.ndarray:
    """Float32 RGB images in [0, 255], smooth enough to look like pictures."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, size[0] // 4, size[1] // 4, 3)).astype(np.float32)
    import tensorflow as tf

    return np.clip(tf.image.resize(coarse, size).numpy() + rng.normal(0, 8, (count, *size, 3)), 0, 255).astype(
        np.float32)


def int8_file_gap(qat: keras.Model, source, size) -> float:
    """Export a quantization-aware model to int8, check that the file is one XNNPACK partition and takes every
    range from the model, and return how far it computes from the model: the mean absolute difference of the
    logits on 2 validation images of ``source``, over the model's logits' standard deviation."""
    from ai_edge_litert.interpreter import Interpreter

    from mobileseg.deploy import packaging, report, tflite_convert
    from mobileseg.litert_interpreter import delegate_report
    from mobileseg.quant.ptq import representative_images

    flatbuffer = packaging.convert(qat, "int8")
    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    assert delegate_report(interpreter) == (1, [])
    assert report.qat_coverage(qat, flatbuffer)["calibrated_tensors"] == []
    x = np.concatenate(representative_images(source, size, 2, split="val"))
    want = np.asarray(qat(x))
    got = np.concatenate([tflite_convert.run(flatbuffer, [image[None]])[0] for image in x])
    return float(np.abs(got - want).mean() / want.std())
