"""benchmarks/search_vs_random_camvid.py: its targets, rows and resume rules, without training.

Every stage end to end is the smoke run in the script's docstring (minutes: a latency table, a
supernet, two searches, two trainings with QAT export; too long for a test).
"""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import search_vs_random_camvid as benchmark  # noqa: E402

SETTINGS = {"space": "search_space/demo.yaml", "data": "synthetic:24", "size": "184x240", "recipe": ["--x"],
            "epochs": 1, "qat_epochs": 1, "supernet_epochs": 1, "population": 4, "generations": 2}


def test_default_targets_are_the_20th_50th_and_80th_percentiles():
    assert benchmark.percentile_targets([float(ms) for ms in range(1, 102)]) == [21.0, 51.0, 81.0]
    assert benchmark.percentile_targets([1.234, 1.234, 1.234]) == [1.23] * 3


def test_a_row_holds_the_figures_the_docstring_names():
    chosen = {"latency_ms": 1.12, "miou": 0.06, "reason": "the highest predicted latency within the 1.15 ms target"}
    int8 = {"file": "x/model_int8.tflite", "latency_ms": 1.5, "xnnpack_partitions": 1}
    trained = {"int8_test_miou": 0.3, "float_test_miou": 0.31, "best_val_miou": 0.32, "int8_method": "qat",
               "commands": ["train", "export"]}
    kept = {"genotype": "benchmarks/results/genotypes/search_vs_random_camvid/random_1.15ms_seed0.yaml",
            "composition": "main: conv"}
    row = benchmark.result_row("random", 1.15, 0, 12.34, chosen, int8, trained, kept)
    assert {key: row[key] for key in ("target_ms", "strategy", "seed", "predicted_ms", "int8_ms", "test_miou",
                                      "search_seconds")} == {
        "target_ms": 1.15, "strategy": "random", "seed": 0, "predicted_ms": 1.12, "int8_ms": 1.5, "test_miou": 0.3,
        "search_seconds": 12.3}
    assert (row["float_test_miou"], row["proxy_miou"], row["genotype"]) == (0.31, 0.06, kept["genotype"])
    assert row["within_target"] and not benchmark.result_row("random", 1.1, 0, 1.0, chosen, int8, trained,
                                                             kept)["within_target"]


def test_only_the_missing_rows_run_seed_by_seed():
    results = {"targets_ms": [1.0, 2.0], "rows": [{"seed": 0, "target_ms": 1.0, "strategy": "evolutionary"},
                                                  {"seed": 0, "target_ms": 2.0, "strategy": "random"}]}
    strategies = ("evolutionary", "random", "random_supernet")
    assert benchmark.todo(results, [0, 1]) == [
        (0, 1.0, "random"), (0, 1.0, "random_supernet"), (0, 2.0, "evolutionary"), (0, 2.0, "random_supernet"),
        *[(1, target, strategy) for target in (1.0, 2.0) for strategy in strategies]]


def test_a_result_is_resumed_only_with_its_own_settings_and_targets():
    previous = {"rows": [], "targets_ms": [1.0, 2.0], **SETTINGS}
    assert benchmark.changes(previous, SETTINGS, None) == []
    assert benchmark.changes(previous, SETTINGS, [1.0, 2.0]) == []
    assert benchmark.changes(previous, {**SETTINGS, "epochs": 2}, None) == ["epochs 1 -> 2"]
    assert benchmark.changes(previous, SETTINGS, [3.0]) == ["targets_ms [1.0, 2.0] -> [3.0]"]


def test_a_finished_search_is_not_run_again(tmp_path, monkeypatch):
    """Its seconds come from the first call; a second call would record a study found done."""
    run_dir = tmp_path / "seed0" / "random_1ms"
    run_dir.mkdir(parents=True)
    (run_dir / "benchmark_search.json").write_text(json.dumps({"seconds": 7.5}))
    monkeypatch.setattr(benchmark, "run", lambda *a: pytest.fail("a finished search was run again"))
    assert benchmark.search("random", 1.0, 0, SimpleNamespace(work_dir=tmp_path), tmp_path / "t.json") == (run_dir, 7.5)


@pytest.mark.parametrize("strategy", ["evolutionary", "random_supernet"])
def test_a_search_on_the_supernet_counts_every_supernet_epoch_once(tmp_path, monkeypatch, strategy):
    """The supernet's epochs from its checkpoint (its command, called again, records a few seconds), plus the
    search's stages; the supernet is copied whole into the target's folder (a partial copy is made again).
    Random search with weight sharing is the random strategy scored by that supernet."""
    from mobileseg.state_files import write_checkpoint

    calls = []

    def fake_run(command, log):
        run_dir = Path(command[command.index("--run_dir") + 1])
        calls.append(run_dir.name)
        if run_dir.name.startswith("random_supernet"):
            assert command[command.index("--strategy") + 1] == "random"
            assert command[command.index("--random_score") + 1] == "supernet"
        else:
            assert "--strategy" not in command
        if command[command.index("--stage") + 1] == "supernet":
            write_checkpoint(run_dir / "supernet" / "checkpoint.npz", {"log": [{"seconds": 10.0}, {"seconds": 20.0}]},
                             {"w0": np.zeros(1)})
            stages = {"supernet": {"seconds": 2.0}}  # as a call that finds it trained records
        else:
            assert (run_dir / "supernet" / "checkpoint.npz").is_file()
            stages = {"latency": {"seconds": 1.0}, "search": {"seconds": 3.5}, "outputs": {"seconds": 0.5}}
        (run_dir / "search_state.json").write_text(json.dumps({"stages": stages}))

    monkeypatch.setattr(benchmark, "run", fake_run)
    args = SimpleNamespace(work_dir=tmp_path, space="s.yaml", data="synthetic:24", population=4, generations=None,
                           supernet_epochs=2)
    run_dir = tmp_path / "seed0" / f"{strategy}_1ms"
    (run_dir / "supernet.partial").mkdir(parents=True)
    assert benchmark.search(strategy, 1.0, 0, args, tmp_path / "t.json") == (run_dir, 35.0)
    assert not (run_dir / "supernet.partial").exists()
    assert benchmark.search(strategy, 1.0, 0, args, tmp_path / "t.json") == (run_dir, 35.0)
    assert calls == ["supernet_base", f"{strategy}_1ms"]


def test_every_row_s_int8_file_is_timed_again_in_one_interleaved_session(tmp_path):
    from mobileseg.latency.testing import tiny_tflite

    rows = []
    for name, channels in (("evolutionary_1ms_seed0", 8), ("random_1ms_seed0", 32)):
        export = tmp_path / "trained" / name / "export"
        export.mkdir(parents=True)
        (export / "model_int8.tflite").write_bytes(tiny_tflite("conv", size=32, channels=channels))
        rows.append({"genotype": f"benchmarks/results/genotypes/x/{name}.yaml", "int8_ms": 99.0})
    results = {"rows": rows}
    benchmark.retime(results, tmp_path, rounds=2)
    timed = [row["int8_ms_interleaved"] for row in results["rows"]]
    assert all(0 < ms < 99.0 for ms in timed) and timed[0] < timed[1]  # 8 channels run faster than 32
    assert results["retimed"]["rounds"] == 2 and len(results["retimed"]["load_average"]["start"]) == 3
