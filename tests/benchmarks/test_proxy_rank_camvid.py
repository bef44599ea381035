"""How benchmarks/proxy_rank_camvid.py turns repeated trainings into a ground truth and its repeatability."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from proxy_rank_camvid import repeatability, seed_mean_truth  # noqa: E402

REPORT = {
    "trained": [{"name": n, "trained_test_miou": m, "best_val_miou": m} for n, m in
                [("a", 0.40), ("b", 0.42), ("c", 0.44), ("d", 0.46)]],
    "repeats": [{"name": n, "seed": 1, "trained_test_miou": m} for n, m in [("a", 0.43), ("b", 0.41), ("c", 0.45)]],
}


def test_the_seed_mean_averages_every_seed_of_the_networks_all_seeds_trained():
    truth = seed_mean_truth(REPORT)
    assert truth == pytest.approx({"a": 0.415, "b": 0.415, "c": 0.445})  # d has no repeat yet
    with_seed_2 = {**REPORT, "repeats": [*REPORT["repeats"], {"name": "a", "seed": 2, "trained_test_miou": 0.46}]}
    assert seed_mean_truth(with_seed_2) == pytest.approx({"a": (0.40 + 0.43 + 0.46) / 3})
    assert seed_mean_truth({"trained": REPORT["trained"]}) == pytest.approx(
        {row["name"]: row["trained_test_miou"] for row in REPORT["trained"]})


def test_repeatability_compares_each_seed_with_the_first_training():
    [row] = repeatability(REPORT)
    assert (row["seed"], row["n_networks"]) == (1, 3)
    assert row["test_miou_mean_abs_difference"] == pytest.approx((0.03 + 0.01 + 0.01) / 3)
    assert row["kendall_tau_between_seeds"] == pytest.approx(1 / 3)  # a swaps places with b
    ceilings = row["noise_ceiling"]
    assert [c["seeds"] for c in ceilings] == [1, 2, 3, 4]
    taus = [c["expected_tau"] for c in ceilings]  # spread 0.02, seed noise 0.014: half the variance is noise
    assert 0 < taus[0] < taus[-1] < 1
