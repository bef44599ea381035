"""The run report's sections, each built from what the run folder holds (`mobileseg.report.run_folder`).

`report_html` is the whole page: overview, Pareto front, the chosen network drawn, accuracy
(per-class IoU and confusion matrices of the float and int8 models), sample predictions,
the per-block latency breakdown, the export checks with the benchmark, and where the int8
file's time goes op type by op type. A section whose
inputs the run lacks (a search-only run has no model; a run stopped before export has no
int8 file) says "not in this run" and why, and so does one whose inputs cannot be used (a
data set no longer where the run found it), so a report of any run is written.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from mobileseg.report.html_page import Section, not_in_run, png_image, render_page, table
from mobileseg.report.run_folder import RunFolder
from mobileseg.run.run_dir import RunDir


def _percent(value) -> float | None:
    return None if value is None else 100.0 * value


def overview_section(run: RunFolder) -> Section:
    """What was run and what came out: network, data, accuracy, latency, size, and files left out."""
    summary = run.summary or {}
    chosen = (run.pareto or {}).get("chosen") or {}
    rows = [
        ("run folder", str(run.path)),
        ("network", run.genotype.name if run.genotype is not None else summary.get("arch_name")),
        ("composition", summary.get("composition") or chosen.get("composition")),
        ("data set", run.setting("data")),
        ("search space", run.setting("space")),
        ("chosen because", summary.get("search_reason") or chosen.get("reason")),
        ("mIoU float, %", _percent(summary.get("miou_float"))),
        ("mIoU int8, %", _percent(summary.get("miou_int8"))),
        ("int8 latency, ms (median)", summary.get("latency_ms")),
        ("latency target, ms", summary.get("target_latency_ms") or run.setting("target_latency_ms")),
        ("int8 size, MB", summary.get("size_mb")),
    ]
    body = table(None, [(name, value) for name, value in rows if value is not None])
    if "meets_target" in summary:
        met = summary["meets_target"]
        body += f'<p class="{"good" if met else "bad"}">latency target {"met" if met else "not met"}</p>'
    if run.problems:
        body += "<p>Files left out (damaged or unreadable):</p><ul>" + "".join(
            f"<li>{escape(problem)}</li>" for problem in run.problems) + "</ul>"
    return Section("overview", "Overview", body)


def pareto_section(run: RunFolder) -> Section:
    """The search's Pareto plot and front, the chosen network marked."""
    from mobileseg.search.study_storage import STUDY_FILE

    if run.pareto is None:
        return Section("pareto", "Pareto front", not_in_run("no pareto.json: the search has not finished here"))
    body = ""
    plot = run.file(RunDir.PARETO_PNG)
    body += png_image(plot.read_bytes(), "Pareto plot") if plot else not_in_run("no pareto.png")
    chosen = run.pareto.get("chosen") or {}
    if chosen.get("reason"):
        body += f"<p>Chosen (trial {escape(str(chosen.get('trial')))}): {escape(chosen['reason'])}.</p>"
    front = run.pareto.get("front") or []
    rows = [(row.get("trial"), row.get("latency_ms"), _percent(row.get("miou")), row.get("params"),
             row.get("macs"), row.get("composition")) for row in front]
    classes = ["chosen" if row.get("trial") == chosen.get("trial") else "" for row in front]
    body += table(["trial", "predicted ms", "proxy mIoU %", "params", "MACs", "composition"], rows, classes)
    study = run.file(STUDY_FILE)
    if study is not None:
        body += (f"<p>Every trial is in <code>{escape(str(study))}</code>; watch or browse it live with "
                 f"<code>optuna-dashboard sqlite:///{escape(str(study.resolve()))}</code>.</p>")
    return Section("pareto", "Pareto front", body)


def network_section(run: RunFolder) -> Section:
    """The chosen genotype drawn as branches and cells (SVG), and its YAML."""
    from mobileseg.arch.genotype import Genotype
    from mobileseg.arch.schema_io import dumps
    from mobileseg.report.genotype_svg import genotype_svg, legend_html

    if run.genotype is None:
        return Section("network", "Chosen network", not_in_run("no arch.yaml: no network chosen yet"))
    if not isinstance(run.genotype, Genotype):
        return Section("network", "Chosen network", not_in_run(
            f"arch.yaml names a network another library builds ({run.genotype.external}); it has no cells to draw"))
    body = (f'<div class="scroll">{genotype_svg(run.genotype)}</div>{legend_html()}'
            f"<details><summary>arch.yaml</summary><pre>{escape(dumps(run.genotype))}</pre></details>")
    return Section("network", "Chosen network", body)


def quality_sections(run: RunFolder, samples: int, progress: bool | None = None) -> list[Section]:
    """Accuracy (per-class IoU, confusion matrices) and sample predictions of the run's models."""
    from mobileseg.data.problems import DataError
    from mobileseg.data.sources import open_source
    from mobileseg.report.quality import QualityError, evaluate_models, evaluation_split, open_models, \
        predict_samples

    def both(reason: str) -> list[Section]:
        return [Section("accuracy", "Accuracy", not_in_run(reason)),
                Section("samples", "Sample predictions", not_in_run(reason))]

    if run.file(RunDir.MODEL) is None and run.file(RunDir.INT8) is None:
        return both(f"no {RunDir.MODEL} or {RunDir.INT8}: no model trained yet")
    spec = run.setting("data")
    if spec is None:
        return both("config.yaml does not name the data set")
    try:
        source = open_source(spec)
        split = evaluation_split(source)
        models = open_models(run.path)
        results = evaluate_models(models, source, split, progress)
        shown = predict_samples(models, source, split, samples)
    except (DataError, QualityError) as error:
        return both(f"the models could not be evaluated: {error}")
    return [Section("accuracy", "Accuracy", _accuracy_body(results, source, split)),
            Section("samples", "Sample predictions", _samples_body(shown, source, split, samples))]


def _accuracy_body(results: dict, source, split: str) -> str:
    from mobileseg.report.figures import confusion_png
    from mobileseg.report.quality import MODELS

    labels = list(results)
    first = results[labels[0]]
    missing = [f"{name} (no {file})" for name, file in MODELS if name not in results]
    body = (f"<p>{escape(source.spec)}, {escape(split)} split: {first['images']} images at full resolution "
            f"(python -m mobileseg.evaluate).</p>")
    if missing:
        body += not_in_run(", ".join(missing))
    rows = [(name, *(_percent(results[label]["per_class_iou"][name]) for label in labels))
            for name in first["class_names"]]
    rows.append(("mean (mIoU)", *(_percent(results[label]["miou"]) for label in labels)))
    rows.append(("pixel accuracy", *(_percent(results[label]["pixel_accuracy"]) for label in labels)))
    body += "<h3>Per-class IoU, %</h3>" + table(["class", *labels], rows)
    body += "<h3>Confusion matrices</h3><div class=\"row\">" + "".join(
        png_image(confusion_png(results[label]["confusion_matrix"], first["class_names"],
                                f"{label}: {Path(results[label]['model']).name}"), f"confusion matrix, {label}", "half")
        for label in labels) + "</div>"
    return body


def _samples_body(samples, source, split: str, requested: int) -> str:
    from mobileseg.report.figures import samples_png

    if not samples:
        return not_in_run(f"no images in the {split} split" if requested else "--samples 0")
    return (f"<p>{len(samples)} {escape(split)} images of {escape(source.spec)}, spread over the split; "
            "colours are the data set's classes.</p>"
            + png_image(samples_png(samples, source.colors, source.class_names), "sample predictions"))


def latency_section(run: RunFolder) -> Section:
    """The chosen network's predicted latency block by block, against the int8 file's measured time."""
    from mobileseg.arch.genotype import Genotype
    from mobileseg.latency.table import TableFormatError
    from mobileseg.report.latency_breakdown import breakdown

    title = "Where the milliseconds go"
    table_path = run.file(RunDir.LATENCY_TABLE)
    search = run.config.get("search") or {}  # the size the search predicted latency at (train's is a crop)
    size, classes = search.get("input_size"), search.get("num_classes")
    if run.export_report:
        size, classes = size or run.export_report.get("input_size"), classes or run.export_report.get("num_classes")
    if not isinstance(run.genotype, Genotype) or table_path is None or not size or not classes:
        return Section("latency", title, not_in_run(
            "the latency breakdown needs arch.yaml (a genotype), latency_table.json and the search's input size"))
    try:
        result = breakdown(run.genotype, table_path, tuple(size), int(classes))
    except (TableFormatError, OSError) as error:
        return Section("latency", title, not_in_run(f"{table_path} cannot be used: {error}"))
    largest = max((block.ms or 0.0 for block in result.blocks), default=0.0) or 1.0
    rows = []
    for block in result.blocks:
        share = None if block.ms is None or not result.blocks_ms else 100 * block.ms / result.blocks_ms
        bar = f'<span class="bar" style="width:{200 * (block.ms or 0.0) / largest:.0f}px"></span>'
        rows.append((block.name, block.op, block.shapes, block.ms, share, bar))
    body = (f"<p>Predicted at {size[0]}x{size[1]} from {escape(result.table)} ({escape(result.device)}): the "
            "median of each block measured alone, as the search sums them.</p>")
    body += table(["block", "op", "shape in -> out", "ms", "% of blocks", ""], rows, raw_columns=(5,))
    measured = (run.summary or {}).get("latency_ms")
    totals = [("sum of the blocks", result.blocks_ms), ("predicted (with the table's overhead)", result.predicted_ms),
              ("measured int8 file (bench)", measured)]
    body += table(None, [(name, f"{value:.4g} ms") for name, value in totals if value is not None])
    if result.missing:
        body += not_in_run(f"times for {', '.join(result.missing)} (not in the table)")
    return Section("latency", title, body)


def export_section(run: RunFolder) -> Section:
    """The export's checks (ops, XNNPACK partitions, accuracy drop) and the benchmark."""
    title = "Export checks and benchmark"
    report = run.export_report
    if report is None:
        return Section("export", title, not_in_run("no export/report.json: the model has not been exported"))
    passed = report.get("passed")
    body = f'<p class="{"good" if passed else "bad"}">export checks {"passed" if passed else "failed"}</p>'
    if report.get("failed_checks"):
        body += "<ul>" + "".join(f"<li>{escape(str(check))}</li>" for check in report["failed_checks"]) + "</ul>"
    rows = [(file.get("file"), f"{file.get('mode')} {file.get('method') or ''}".strip(), file.get("size_mb"),
             "yes" if file.get("builtin_only") else "no", file.get("xnnpack_partitions"),
             ", ".join(file.get("fallback_ops") or []) or "none", file.get("latency_ms"),
             _percent(file.get("miou")), file.get("miou_drop"),
             ", ".join(f"{op} {count}" for op, count in (file.get("ops") or {}).items()))
            for file in report.get("files") or []]
    body += table(["file", "mode", "MB", "builtin ops only", "XNNPACK partitions", "fallback ops", "ms",
                   "mIoU %", "mIoU drop, points", "ops"], rows)
    devices = (run.bench or {}).get("devices") or []
    bench = [(record.get("model"), (device.get("fingerprint") or {}).get("model") or device["fingerprint"].get("cpu"),
              record.get("threads"), record.get("median_ms"), record.get("p90_ms"), record.get("runs"))
             for device in devices for record in device.get("records") or []]
    body += ("<h3>Benchmark</h3>" + table(["model", "device", "threads", "median ms", "p90 ms", "runs"], bench)
             if bench else not_in_run("no bench/local.json or bench/adb.json: the int8 file has not been timed"))
    return Section("export", title, body)


def int8_profile_section(run: RunFolder) -> Section:
    """Where int8 time goes: the export's op-type profile of the int8 file against the fp32 file."""
    title = "Where int8 time goes"
    profile = (run.export_report or {}).get("op_profile")
    if not profile:
        return Section("int8-profile", title, not_in_run(
            "no op profile in export/report.json: no int8 file exported (or exported before profiles were made)"))
    if profile.get("error"):
        return Section("int8-profile", title, not_in_run(f"the export could not profile its files: {profile['error']}"))
    fp32_file = profile.get("fp32_file") or "an fp32 conversion of the same model"
    body = (f"<p>{escape(profile['int8_file'])} against {escape(fp32_file)}, op type by op type, at 1 thread: "
            f"{escape(profile['method'])}. Rows in red lose time in int8.</p>")
    rows = [(op["op"], op.get("fp32_nodes"), op["fp32_ms"], op.get("int8_nodes"), op["int8_ms"], op["speedup"])
            for op in profile["ops"]]
    classes = ["bad" if op["speedup"] is not None and op["speedup"] < 1 else "" for op in profile["ops"]]
    body += table(["op (XNNPACK operator or LiteRT kernel)", "fp32 nodes", "fp32 ms", "int8 nodes", "int8 ms",
                   "x fp32"], rows, classes)
    totals = [("sum of the ops", profile["fp32_ops_ms"], profile["int8_ops_ms"], None),
              ("whole file (thread CPU)", profile["fp32_ms"], profile["int8_ms"], profile["speedup"]),
              ("sum of the ops / whole file", profile["fp32_ops_vs_whole"], profile["int8_ops_vs_whole"], None)]
    body += table(["", "fp32", "int8", "x fp32"], totals)
    return Section("int8-profile", title, body)


def report_html(run: RunFolder, samples: int = 4, progress: bool | None = None) -> str:
    """The whole report page of a run."""
    sections = [overview_section(run), pareto_section(run), network_section(run),
                *quality_sections(run, samples, progress), latency_section(run), export_section(run),
                int8_profile_section(run)]
    name = run.genotype.name if run.genotype is not None else run.path.name
    return render_page(f"mobileseg run report: {name}", sections, subtitle=str(run.path.resolve()))
