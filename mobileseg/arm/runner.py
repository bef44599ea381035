"""Run one ``.tflite`` file on given images and keep its raw output: the half of the ARM check that
runs inside the emulated aarch64 python, and, the same code, on this CPU.

``python -m mobileseg.arm MODEL IMAGES.npy OUT_DIR [--threads N]`` (`mobileseg/arm/__main__.py`) reads
float32 RGB images [N, H, W, 3] in [0, 255] already at the model's input size, runs the file in LiteRT
(XNNPACK, its default CPU delegate) image by image, and writes ``OUT_DIR/outputs.npy`` (the first output,
raw: int8 logits stay int8) and ``OUT_DIR/run.json`` (`run_model`'s report). With ``--every_output`` it
writes instead every output tensor of the first image to ``OUT_DIR/tensors.npz`` (`run_every_output`, for
`mobileseg.arm.divergence`). It needs only numpy and ``ai_edge_litert``, which is all the arm64 root has:
the model is opened by `mobileseg.inference.Segmenter` and its delegate report is
`mobileseg.litert_measure.delegate_report`, as in every local run. Bad input: one line on stderr and
exit code 2.
"""

from __future__ import annotations

import ctypes
import platform
import time
from importlib import metadata
from pathlib import Path

import numpy as np

# getauxval(AT_HWCAP) and (AT_HWCAP2) bits of the aarch64 Linux ABI (asm/hwcap.h)
AT_HWCAP, AT_HWCAP2 = 16, 26
HWCAP_BITS = {"asimddp": (AT_HWCAP, 20), "sve": (AT_HWCAP, 22), "i8mm": (AT_HWCAP2, 13), "sme": (AT_HWCAP2, 23)}
OUTPUTS = "outputs.npy"
REPORT = "run.json"
TENSORS = "tensors.npz"


def cpu_features() -> dict:
    """The machine and, on aarch64, which of the extensions XNNPACK dispatches on the kernel
    advertises (what XNNPACK's cpuinfo reads): ``{"machine": "aarch64", "asimddp": True, ...}``."""
    features = {"machine": platform.machine()}
    if features["machine"] == "aarch64":
        getauxval = ctypes.CDLL(None).getauxval
        getauxval.restype = ctypes.c_ulong
        getauxval.argtypes = [ctypes.c_ulong]
        for name, (which, bit) in HWCAP_BITS.items():
            features[name] = bool(getauxval(which) >> bit & 1)
    return features


def run_model(model: str | Path, images: np.ndarray, threads: int = 1) -> tuple[np.ndarray, dict]:
    """The raw first output of a ``.tflite`` file on each image, and what the run used.

    Args:
        model: the ``.tflite`` file.
        images: float32 RGB [N, H, W, 3] in [0, 255] at the model's input size.
        threads: LiteRT threads.

    Returns:
        ``(outputs [N, ...] in the output tensor's dtype, report)``; the report holds
        ``output_kind`` (``logits`` or ``classes``), ``output_scale`` (0.0 for a float output),
        ``xnnpack_partitions``, ``fallback_ops``, ``cpu`` (`cpu_features`), ``litert`` (version)
        and ``seconds`` (the invokes).

    Raises:
        mobileseg.inference.ModelError: a file that is not a one-image TFLite segmentation model.
        ValueError: images of another shape than the model's input.
    """
    from mobileseg.inference import ModelError, Segmenter, quantize_input
    from mobileseg.litert_measure import delegate_report

    if Path(model).suffix != ".tflite":  # a .keras file would need TensorFlow, absent from the arm64 root
        raise ModelError(f"{model}: not a .tflite file")
    segmenter = Segmenter.load(model, num_threads=threads)
    expected = (*segmenter.input_size, 3)
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(f"{model}: images of shape {tuple(images.shape)}; the model takes [N, {expected[0]}, "
                         f"{expected[1]}, 3]")
    interpreter = segmenter.interpreter
    outputs = []
    start = time.perf_counter()
    for image in images:
        interpreter.set_tensor(segmenter.input_detail["index"], quantize_input(image[None], segmenter.input_detail))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(segmenter.output_detail["index"]))
    seconds = time.perf_counter() - start
    partitions, fallback = delegate_report(interpreter)
    scale = float(segmenter.output_detail["quantization"][0])
    if segmenter.output_kind == "logits" and np.issubdtype(outputs[0].dtype, np.integer) and not scale:
        raise ModelError(f"{model}: integer logits without a quantization scale")
    return np.concatenate(outputs), {
        "output_kind": segmenter.output_kind, "output_scale": scale, "xnnpack_partitions": partitions,
        "fallback_ops": fallback, "cpu": cpu_features(), "litert": metadata.version("ai-edge-litert"),
        "seconds": round(seconds, 3)}


def run_every_output(model: str | Path, image: np.ndarray, threads: int = 1) -> dict[str, np.ndarray]:
    """Every output tensor of a ``.tflite`` file on one image, raw, keyed by tensor index (as a string).

    Args:
        model: the ``.tflite`` file (`mobileseg.arm.divergence.every_tensor_out` makes every tensor an output).
        image: float32 RGB [H, W, 3] in [0, 255] at the model's input size.
        threads: LiteRT threads.

    Raises:
        FileNotFoundError, ValueError: no such file, or not a TFLite file (named).
    """
    from mobileseg.inference import quantize_input
    from mobileseg.litert_interpreter import new_interpreter, read_flatbuffer

    flatbuffer, _ = read_flatbuffer(model)
    interpreter = new_interpreter(model_content=flatbuffer, num_threads=threads)
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], quantize_input(np.asarray(image, np.float32)[None], detail))
    interpreter.invoke()
    return {str(out["index"]): interpreter.get_tensor(out["index"]) for out in interpreter.get_output_details()}
