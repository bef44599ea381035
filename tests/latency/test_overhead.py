"""fit_overhead: which form it picks and why, and the stored form."""

import pytest

from mobileseg.latency.overhead import Overhead, fit_overhead


def test_affine_recovers_an_exact_line():
    fit = fit_overhead([1.0, 2.0, 4.0, 8.0], [2.0 * x + 0.5 for x in (1.0, 2.0, 4.0, 8.0)])
    assert fit.kind == "affine" and "spanning 8.00x" in fit.reason
    assert fit.scale == pytest.approx(2.0) and fit.offset_ms == pytest.approx(0.5)
    assert fit.rmse_ms == pytest.approx(0.0, abs=1e-9)
    assert fit.apply(10.0) == pytest.approx(20.5)


def test_offset_with_too_few_networks():
    fit = fit_overhead([10.0, 20.0], [11.0, 22.0])
    assert fit.kind == "offset" and fit.scale == 1.0 and fit.offset_ms == pytest.approx(1.5)
    assert "too few for a slope" in fit.reason
    assert fit.rmse_ms == pytest.approx(0.5)


def test_offset_when_the_sums_span_too_little():
    fit = fit_overhead([10.0, 10.5, 11.0], [12.0, 12.9, 13.0])
    assert fit.kind == "offset" and "span 1.10x" in fit.reason


def test_offset_when_the_slope_is_not_positive():
    fit = fit_overhead([1.0, 2.0, 4.0], [5.0, 4.0, 3.0])
    assert fit.kind == "offset" and "<= 0" in fit.reason


def test_requested_forms():
    assert fit_overhead([1.0, 1.1, 1.2], [2.0, 2.2, 2.4], kind="affine").kind == "affine"
    assert fit_overhead([1.0, 2.0, 4.0], [2.0, 3.0, 5.0], kind="offset").offset_ms == pytest.approx(1.0)


@pytest.mark.parametrize("args, message", [
    (([], []), "at least one"),
    (([1.0], [1.0, 2.0]), "equal-length"),
    (([1.0, 2.0], [1.0, 2.0], "affine"), "needs >= 3 networks"),
    (([1.0], [1.0], "cubic"), "kind must be"),
])
def test_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        fit_overhead(*args)


def test_dict_round_trip_and_strictness():
    fit = fit_overhead([1.0, 2.0, 4.0], [1.5, 2.7, 4.9])
    assert Overhead.from_dict(fit.to_dict()) == fit
    with pytest.raises(ValueError, match=r"unknown keys \['slope'\]"):
        Overhead.from_dict({**fit.to_dict(), "slope": 1})
    with pytest.raises(ValueError, match="overhead kind"):
        Overhead("quadratic")
    assert Overhead().apply(3.0) == 3.0
