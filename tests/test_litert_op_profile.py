"""profile_interleaved on real converted models: XNNPACK operators and built-in nodes, times that follow
the work, a sum that matches the whole invoke, and clear errors."""

import numpy as np
import pytest

from mobileseg.litert_measure import measure_interleaved
from mobileseg.litert_op_profile import clean_runs_mean, profile_interleaved
from mobileseg.latency.testing import tiny_tflite

FAST = dict(rounds=3, round_runs=6)


def test_a_delegated_conv_is_one_xnnpack_operator_named_by_xnnpack():
    fp32, int8 = profile_interleaved([tiny_tflite("conv", mode="fp32"), tiny_tflite("conv")], names=["f", "i"], **FAST)
    assert (fp32.model, int8.model) == ("f", "i") and fp32.runs == int8.runs == 18
    assert [(node.op, node.name) for node in fp32.nodes] == [("Convolution (NHWC, F32) IGEMM", "xnnpack:0")]
    assert [(node.op, node.name) for node in int8.nodes] == [("Convolution (NHWC, QC8) IGEMM", "xnnpack:0")]
    assert all(node.avg_ms > 0 and node.times_called == 1 for node in fp32.nodes + int8.nodes)
    assert fp32.profiled_ms > 0 and int8.profiled_ms > 0


def test_an_op_xnnpack_refuses_is_timed_as_a_builtin_node_between_the_partitions():
    (profile,) = profile_interleaved([tiny_tflite("softmax")], **FAST)
    assert [node.name.split(":")[0] for node in profile.nodes] == ["xnnpack", "builtin", "xnnpack"]
    assert profile.nodes[1].op == "SOFTMAX"
    types = {row.op: row.count for row in profile.by_type()}
    assert types == {"Fully Connected (NC, QS8, QC8W) GEMM": 2, "SOFTMAX": 1}


def test_times_follow_the_work_and_sum_to_the_whole_invoke():
    # ops well under the scheduler's slice on a loaded machine (a few ms: a longer op may have no run the
    # scheduler left alone, and then no clean time; see the module doc)
    small, large = tiny_tflite("conv", size=32, channels=16, mode="fp32"), tiny_tflite("conv", size=64, channels=48,
                                                                                        mode="fp32")
    fast, slow = profile_interleaved([small, large], rounds=4, round_runs=10)
    assert slow.total_ms > 3 * fast.total_ms  # 4 x the pixels, 9 x the MACs per pixel
    (whole,) = measure_interleaved([large], clock="thread_cpu", min_runs=20, max_runs=60)
    assert 0.6 * whole.median_ms < slow.total_ms < 1.4 * whole.median_ms, (slow.total_ms, whole.median_ms)


def test_interrupted_runs_do_not_move_a_node_s_time():
    rng = np.random.default_rng(0)
    samples = np.column_stack([rng.normal(mean, 0.03 * mean, size=60) for mean in (20.0, 400.0, 3400.0)])
    hit = rng.random(samples.shape) < [0.3, 0.6, 0.95]  # the longer the op, the more of its runs interrupted
    noisy = samples + hit * rng.uniform(1e3, 3e4, size=samples.shape)  # by 1 to 30 ms
    np.testing.assert_allclose(clean_runs_mean(noisy), [20.0, 400.0, 3400.0], rtol=0.05)


def test_bad_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such TFLite file"):
        profile_interleaved([tmp_path / "missing.tflite"])
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="bad.tflite is not a TFLite model"):
        profile_interleaved([bad])
    with pytest.raises(ValueError, match="rounds and round_runs"):
        profile_interleaved([tiny_tflite("conv")], rounds=0)
    with pytest.raises(ValueError, match="no models"):
        profile_interleaved([])
