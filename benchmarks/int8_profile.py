"""Benchmark (issue 15, item 3): where int8 time goes, per op type, for every reference network.

For each network of ``search_space/references/`` at ``--size`` (random weights, seed ``--seed``,
CamVid's 11 classes): the fp32 and the int8 file as ``python -m mobileseg.export`` writes them
(`mobileseg.deploy.packaging.convert`: uint8 image in, logits out; int8 post-training quantized
from ``--calibration_images`` CamVid training images chosen by `mobileseg.quant.ptq.representative_images`,
as the export calibrates), then

1. the whole files timed interleaved in LiteRT at 1 thread by thread CPU time
   (`mobileseg.litert_measure`: the idle-core latency on this shared machine), and
2. both files profiled interleaved op by op (`mobileseg.deploy.op_profile.compare_files`: LiteRT's
   profiler, XNNPACK's per-operator times), summed by op type, with each file's sum of op times
   over its whole time (the profile's error).

3. Acting on it (``--float_stem``): the profile shows the int8 stem convolution (3 input channels,
   the image's) slower than the fp32 one, so the int8 file is rewritten with that one convolution
   in float (`float_first_conv`: DEQUANTIZE its int8 input, float weights and bias, QUANTIZE its
   output to the same int8 tensor; the rest of the file untouched) and timed interleaved with the
   int8 and fp32 files, with its logits' agreement with the int8 file on a random image.

Files are kept in ``--work_dir`` and reused (delete them to convert again). The result is
rewritten after every network, so an interrupted run keeps what it measured, and a run with the
same settings (wherever its ``--work_dir``) keeps every row already in ``--out`` and adds the networks it
lacks (``--networks NAME`` adds one; the earlier commands are kept under ``earlier_commands``).

Writes ``--out`` (default ``benchmarks/results/int8_profile.json``):
``{"rows": [{"network", "fp32_ms", "int8_ms", "speedup", "ops": [{"op", "fp32_ms", "int8_ms", ...}], ...}],
"command", "versions", "machine", "load_average", "settings"}``.

Example:
    python benchmarks/int8_profile.py
    python benchmarks/int8_profile.py --networks mobilenetv3_small_lraspp --out /tmp/int8_profile.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REFERENCES = ROOT / "search_space" / "references"
NETWORKS = ("mobilenetv3_small_lraspp", "seaformer_tiny", "fasterseg_lattice", "seaformer_small",
            "mobilenetv3_large_lraspp", "segformer_b0", "seaformer_base", "hyctas_lattice", "rtformer_slim",
            "seaformer_large", "rtformer_base")  # cheapest to convert first


def convert_pair(network: str, calibration: list, args) -> dict[str, bytes]:
    """The fp32 and int8 flatbuffers of one reference network (from ``--work_dir`` when already there)."""
    import keras

    from mobileseg.arch import builder, schema_io
    from mobileseg.atomic_write import write_atomic
    from mobileseg.deploy import packaging
    from mobileseg.quant.ptq import representative_dataset

    paths = {mode: args.work_dir / f"{network}_{mode}.tflite" for mode in ("fp32", "int8")}
    if all(path.is_file() for path in paths.values()):
        return {mode: path.read_bytes() for mode, path in paths.items()}
    keras.utils.set_random_seed(args.seed)
    model = builder.build_model(schema_io.load(REFERENCES / f"{network}.yaml"), args.num_classes, args.size)
    files = {}
    for mode, path in paths.items():
        started = time.time()
        representative = representative_dataset(calibration) if mode == "int8" else None
        files[mode] = packaging.convert(model, mode, "logits", "uint8", representative)
        write_atomic(path, files[mode])
        print(f"{network} {mode}: converted in {time.time() - started:.0f} s", flush=True)
    return files


def float_first_conv(flatbuffer: bytes) -> bytes:
    """The int8 file with its first CONV_2D (the stem) computed in float between a DEQUANTIZE and a QUANTIZE.

    An experiment for `mobileseg.deploy.xnnpack_int8` (whose rewrites it borrows): weights and bias are
    dequantized into float constants, the output is quantized back to the conv's own int8 tensor.
    """
    import numpy as np

    from mobileseg.deploy import xnnpack_int8 as rewrite

    model = rewrite._read(flatbuffer)
    graph = model.subgraphs[0]
    position, op = next((index, op) for index, op in enumerate(graph.operators)
                        if rewrite._op_name(model, op) == "CONV_2D")

    def dequantized_constant(index: int) -> int:
        tensor = graph.tensors[index]
        dtype = {rewrite._INT8: np.int8, 2: np.int32}[tensor.type]  # 2: TensorType INT32 (the bias)
        values = np.frombuffer(bytes(model.buffers[tensor.buffer].data), dtype).reshape(tensor.shape)
        quantization = tensor.quantization
        shape = [1] * values.ndim
        shape[quantization.quantizedDimension] = -1
        values = ((values.astype(np.float32) - np.asarray(quantization.zeroPoint, np.float32).reshape(shape))
                  * np.asarray(quantization.scale, np.float32).reshape(shape))
        new = rewrite._add_float_tensor(model, graph, index, "float")
        model.buffers[graph.tensors[new].buffer].data = np.frombuffer(values.astype(np.float32).tobytes(), np.uint8)
        return new

    data, weights, bias = op.inputs[:3]
    output = op.outputs[0]
    float_data = rewrite._add_float_tensor(model, graph, data, "dequantized")
    float_output = rewrite._add_float_tensor(model, graph, output, "float")
    op.inputs, op.outputs = [float_data, dequantized_constant(weights), dequantized_constant(bias)], [float_output]
    op.opcodeIndex = rewrite._opcode(model, "CONV_2D", 1)
    graph.operators[position:position + 1] = [rewrite._operator(model, "DEQUANTIZE", 2, [data], [float_data]), op,
                                              rewrite._operator(model, "QUANTIZE", 1, [float_output], [output])]
    return rewrite._write(model)


def float_stem_experiment(network: str, files: dict[str, bytes], args) -> dict:
    """The int8 file, the same with a float stem (`float_first_conv`) and the fp32 file, timed interleaved."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from mobileseg.litert_measure import measure_interleaved
    from mobileseg.provenance import load_average

    variant = float_first_conv(files["int8"])
    (args.work_dir / f"{network}_int8_float_stem.tflite").write_bytes(variant)
    image = np.random.default_rng(args.seed).integers(0, 256, (1, *args.size, 3), dtype=np.uint8)
    logits = []
    for flatbuffer in (files["int8"], variant):
        interpreter = Interpreter(model_content=flatbuffer)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
        interpreter.invoke()
        logits.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).astype(np.int32))
    before = load_average()
    fp32, int8, stem = measure_interleaved([files["fp32"], files["int8"], variant], threads=1,
                                           names=["fp32", "int8", "int8_float_stem"], clock="thread_cpu",
                                           min_runs=args.min_runs, max_runs=args.max_runs, seed=args.seed)
    return {"network": network, "fp32_ms": fp32.median_ms, "int8_ms": int8.median_ms,
            "int8_float_stem_ms": stem.median_ms, "speedup": round(fp32.median_ms / int8.median_ms, 3),
            "float_stem_speedup": round(fp32.median_ms / stem.median_ms, 3),
            "float_stem_xnnpack_partitions": stem.xnnpack_partitions,
            "logits_max_step_difference": int(np.abs(logits[0] - logits[1]).max()),
            "argmax_agreement": round(float((logits[0].argmax(-1) == logits[1].argmax(-1)).mean()), 5),
            "load_average_before_after": [before, load_average()]}


def measure(network: str, files: dict[str, bytes], args) -> dict:
    """Whole-file times (thread CPU, interleaved) and the op-type profile of one network's two files."""
    from mobileseg.deploy.op_profile import compare_files
    from mobileseg.litert_measure import measure_interleaved
    from mobileseg.provenance import load_average

    before = load_average()
    fp32, int8 = measure_interleaved([files["fp32"], files["int8"]], threads=1, names=["fp32", "int8"],
                                     clock="thread_cpu", min_runs=args.min_runs, max_runs=args.max_runs,
                                     seed=args.seed)
    profile = compare_files(files["fp32"], files["int8"], fp32.median_ms, int8.median_ms, rounds=args.rounds,
                            round_runs=args.round_runs, seed=args.seed)
    return {"network": network, **profile, "fp32_runs": fp32.runs, "int8_runs": int8.runs,
            "xnnpack_partitions": {"fp32": fp32.xnnpack_partitions, "int8": int8.xnnpack_partitions},
            "fallback_ops": {"fp32": fp32.fallback_ops, "int8": int8.fallback_ops},
            "load_average_before_after": [before, load_average()]}


WHERE = ("work_dir",)
"""Settings that say where files are kept, not how they are measured: a run from another checkout reuses the rows."""


def kept(previous: dict, settings: dict) -> dict:
    """What a run with ``settings`` keeps of the result ``previous`` (``{}``: none): its ``rows`` and ``float_stem``
    rows and its commands (``earlier_commands``) when it was measured the same way (`WHERE` aside), else nothing."""
    same = all(previous.get("settings", {}).get(key) == value for key, value in settings.items() if key not in WHERE)
    if not previous or not same:
        return {"earlier_commands": [], "rows": [], "float_stem": []}
    return {"earlier_commands": [*previous.get("earlier_commands", []), previous["command"]],  # oldest first
            "rows": previous.get("rows", []), "float_stem": previous.get("float_stem", [])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(NETWORKS), help="reference names, comma-separated")
    parser.add_argument("--size", default="360x480", help="HxW")
    parser.add_argument("--num_classes", type=int, default=11)
    parser.add_argument("--data", default=f"camvid:{ROOT.parent / 'shared' / 'datasets' / 'camvid'}",
                        help="the data set whose training images calibrate the int8 files")
    parser.add_argument("--calibration_images", type=int, default=16)
    parser.add_argument("--min_runs", type=int, default=20)
    parser.add_argument("--max_runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=6, help="profiling rounds per file")
    parser.add_argument("--round_runs", type=int, default=10, help="profiled invokes per round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--float_stem", default=",".join(NETWORKS),
                        help="networks whose int8 file is also timed with a float stem (step 3); empty: none")
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "int8_profile")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "int8_profile.json")
    args = parser.parse_args()

    from mobileseg.atomic_write import write_atomic
    from mobileseg.cli_flags import parse_size
    from mobileseg.data.sources import open_source
    from mobileseg.provenance import load_average, machine, versions
    from mobileseg.quant.ptq import representative_images

    args.size = tuple(parse_size(args.size))
    networks = [name.strip() for name in args.networks.split(",") if name.strip()]
    unknown = [name for name in networks if not (REFERENCES / f"{name}.yaml").is_file()]
    if unknown:
        parser.error(f"--networks: no {', '.join(unknown)} in {REFERENCES}")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    calibration = representative_images(open_source(args.data), args.size, args.calibration_images, seed=args.seed)
    settings = {key: str(value) for key, value in vars(args).items() if key not in ("networks", "float_stem", "out")}
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result = {"command": " ".join(["python", "benchmarks/int8_profile.py", *sys.argv[1:]]), "settings": settings,
              "versions": versions(), "machine": machine(), "load_average": [load_average()],
              **kept(previous, settings)}
    done = {row["network"] for row in result["rows"]}
    started = time.time()
    for network in networks:
        if network in done:
            continue
        row = measure(network, convert_pair(network, calibration, args), args)
        result["rows"].append(row)
        result["load_average"].append(load_average())
        result["wall_seconds"] = round(time.time() - started)
        write_atomic(args.out, json.dumps(result, indent=2) + "\n")
        print(f"{network}: fp32 {row['fp32_ms']:.2f} ms, int8 {row['int8_ms']:.2f} ms, x{row['speedup']}; "
              f"ops sum / whole: fp32 {row['fp32_ops_vs_whole']}, int8 {row['int8_ops_vs_whole']}", flush=True)
    done = {row["network"] for row in result["float_stem"]}
    for network in [name.strip() for name in args.float_stem.split(",") if name.strip()]:
        if network in done:
            continue
        row = float_stem_experiment(network, convert_pair(network, calibration, args), args)
        result["float_stem"].append(row)
        write_atomic(args.out, json.dumps(result, indent=2) + "\n")
        print(f"{network} float stem: int8 {row['int8_ms']:.2f} ms -> {row['int8_float_stem_ms']:.2f} ms "
              f"(x{row['speedup']} -> x{row['float_stem_speedup']} fp32), argmax agreement {row['argmax_agreement']}",
              flush=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
