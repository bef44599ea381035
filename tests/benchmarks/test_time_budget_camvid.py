"""benchmarks/time_budget_camvid.py: one budget's row, with the chosen genotype kept in the repository."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import result_genotypes  # noqa: E402
from time_budget_camvid import row  # noqa: E402

from mobileseg.arch import schema_io  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[2] / "search_space" / "references" / "mobilenetv3_small_lraspp.yaml"


def test_a_row_holds_the_stages_the_figures_and_a_committed_genotype(tmp_path, monkeypatch):
    monkeypatch.setattr(result_genotypes, "ROOT", tmp_path)
    monkeypatch.setattr(result_genotypes, "GENOTYPES", tmp_path / "benchmarks" / "results" / "genotypes")
    run_dir = tmp_path / "runs" / "budget_3600s"
    run_dir.mkdir(parents=True)
    (run_dir / "arch.yaml").write_text(REFERENCE.read_text())
    (run_dir / "plan.json").write_text(json.dumps({"sizes": {"train_epochs": 62}}))
    (run_dir / "summary.json").write_text(json.dumps({
        "miou_int8": 0.41, "latency_ms": 3.2, "split": "test",
        "time_plan": [{"stage": "train", "planned_s": 1500, "actual_s": 1480},
                      {"stage": "total", "planned_s": 3400, "actual_s": 3390}]}))

    got = row(3600.0, 3700.0, run_dir, [1.0, 2.0])

    assert got["genotype"] == "benchmarks/results/genotypes/time_budget_camvid/budget_3600s.yaml"
    assert schema_io.load(tmp_path / got["genotype"]) == schema_io.load(REFERENCE)
    assert got["composition"].startswith(schema_io.load(REFERENCE).branches[0].name)
    assert (got["stage_seconds"], got["planned_seconds"]) == ({"train": 1480}, {"train": 1500})
    assert (got["int8_test_miou"], got["int8_ms"], got["within_10_percent"]) == (0.41, 3.2, True)
    assert not row(3600.0, 4000.0, run_dir, [])["within_10_percent"]
