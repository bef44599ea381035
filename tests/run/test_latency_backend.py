"""``--latency_backend``: every form of the grammar, and the refusals that name the flag."""

import pytest

from mobileseg.run.exit_codes import EXIT_BAD_INPUT, BadInput
from mobileseg.run.latency_backend import LatencyBackend, parse_latency_backend


@pytest.mark.parametrize("spec, kind, path, measures, on_phone", [
    ("local", "local", None, True, False),
    ("local:runs/shared.json", "local", "runs/shared.json", True, False),
    ("adb", "adb", None, True, True),
    ("adb:pixel7.json", "adb", "pixel7.json", True, True),
    ("table:t.json", "table", "t.json", False, False),
    ("table:C:/tables/t.json", "table", "C:/tables/t.json", False, False),  # only the first colon splits
])
def test_every_form_of_the_grammar(spec, kind, path, measures, on_phone):
    backend = parse_latency_backend(spec)
    assert backend == LatencyBackend(spec, kind, path)
    assert (backend.measures, backend.on_phone) == (measures, on_phone)


@pytest.mark.parametrize("spec, message", [
    ("gpu", "--latency_backend gpu: expected local[:FILE], adb[:FILE] or table:FILE"),
    ("", "--latency_backend : expected local[:FILE], adb[:FILE] or table:FILE"),
    ("table:", "--latency_backend table:: table needs a file; expected local[:FILE], adb[:FILE] or table:FILE"),
    ("Local", "--latency_backend Local: expected"),
])
def test_a_bad_backend_is_bad_input_naming_the_flag(spec, message):
    with pytest.raises(BadInput) as error:
        parse_latency_backend(spec)
    assert str(error.value).startswith(message)
    assert error.value.exit_code == EXIT_BAD_INPUT
