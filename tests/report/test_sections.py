"""The report's sections from what a run holds: a search-only run shows its front, its network and the
live-view command, and says which parts it does not have."""

import re

from mobileseg.report.run_folder import open_run
from mobileseg.report.sections import report_html


def section(page, anchor):
    return re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.S).group(1)


def test_a_search_only_run_shows_its_front_and_network_and_names_what_it_lacks(searched_run):
    run = open_run(searched_run)
    page = report_html(run, samples=2)
    pareto = section(page, "pareto")
    assert pareto.count('<img class="figure" alt="Pareto plot" src="data:image/png;base64,') == 1
    chosen = run.pareto["chosen"]["trial"]
    assert re.search(rf'<tr class="chosen"><td class="num">{chosen}</td>', pareto)
    assert pareto.count("<tr>") == 1 + len(run.pareto["front"]) - 1  # heading row and the other front rows
    assert f"optuna-dashboard sqlite:///{(searched_run / 'study.db').resolve()}" in pareto
    assert "<svg" in section(page, "network") and run.genotype.name in page
    for anchor in ("accuracy", "samples", "latency", "export"):
        assert "Not in this run" in section(page, anchor), anchor
    assert "Not in this run" not in section(page, "pareto") + section(page, "network")


def test_the_export_s_op_profile_shows_which_ops_gain_and_which_lose_in_int8(tmp_path):
    import json

    from mobileseg.deploy.op_profile import export_profile
    from mobileseg.latency.testing import tiny_tflite

    (tmp_path / "export").mkdir()
    (tmp_path / "config.yaml").write_text("export: {data: synthetic:8}\n")
    page = report_html(open_run(tmp_path), samples=0)
    assert "Not in this run" in section(page, "int8-profile")  # no export report yet: said, not failed

    fp32, int8 = tmp_path / "export" / "model_fp32.tflite", tmp_path / "export" / "model_int8.tflite"
    fp32.write_bytes(tiny_tflite("softmax", mode="fp32"))
    int8.write_bytes(tiny_tflite("softmax"))
    profile = export_profile(fp32, int8, 0.05, 0.04)
    (tmp_path / "export" / "report.json").write_text(json.dumps({"files": [], "passed": True, "op_profile": profile}))
    shown = section(report_html(open_run(tmp_path), samples=0), "int8-profile")
    assert "model_int8.tflite against model_fp32.tflite" in shown and "XNNPACK" in shown
    for op in profile["ops"]:
        row = re.search(rf"<tr( class=\"bad\")?><td>{re.escape(op['op'])}</td>", shown)
        assert row, op["op"]
        assert bool(row.group(1)) == (op["speedup"] is not None and op["speedup"] < 1), op
    assert "<td>whole file (thread CPU)</td>" in shown and "<td>sum of the ops / whole file</td>" in shown
