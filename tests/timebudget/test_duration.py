"""Durations as users write them, and the errors for those that are not."""

import pytest

from mobileseg.timebudget.duration import DurationError, format_duration, parse_duration


@pytest.mark.parametrize("text, seconds", [("45m", 2700), ("2h", 7200), ("8h", 28800), ("1h30m", 5400),
                                           ("1h5m30s", 3930), ("90s", 90), ("600", 600), (" 2H ", 7200),
                                           ("1.5h", 5400), ("0.5m", 30)])
def test_the_forms_a_user_writes_are_read(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text, words", [("", "empty"), ("2 hours", "not a duration"), ("30m1h", "not a duration"),
                                         ("1h1h", "not a duration"), ("h", "not a duration"), ("0", "positive"),
                                         ("0m", "positive"), ("-5m", "not a duration"), ("inf", "positive"),
                                         ("nan", "positive")])
def test_a_bad_duration_is_refused_quoting_it_and_the_forms(text, words):
    with pytest.raises(DurationError, match=words) as caught:
        parse_duration(text)
    assert "45m, 2h, 1h30m" in str(caught.value)


def test_durations_print_at_a_readable_precision():
    assert [format_duration(s) for s in (0.4, 59.94, 60, 3599, 3600, 5430, 86400)] == \
        ["0.4s", "59.9s", "1m00s", "59m59s", "1h00m", "1h30m", "24h00m"]
