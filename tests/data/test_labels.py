"""Label tables, value ranges in messages, colourising."""

import numpy as np
import pytest

from mobileseg.data.labels import IGNORE_INDEX, colorize, describe_values, label_table


def test_label_table_maps_and_flags_invalid_values():
    table, valid = label_table({0: IGNORE_INDEX, 1: 0, 2: 1})
    assert table[:4].tolist() == [255, 0, 1, 255] and valid[:4].tolist() == [True, True, True, False]
    with pytest.raises(ValueError, match="outside 0..255"):
        label_table({300: 0})


def test_describe_values_groups_runs():
    assert describe_values([]) == ""
    assert describe_values([7]) == "7"
    assert describe_values([1, 2, 3, 5, 9, 10]) == "1..3, 5, 9..10"


def test_colorize_paints_classes_and_ignore():
    colors = np.array([[10, 20, 30], [40, 50, 60]], np.uint8)
    out = colorize(np.array([[[0, 1], [255, 7]]]), colors, ignore_color=(1, 1, 1))
    assert out.shape == (1, 2, 2, 3) and out.dtype == np.uint8
    assert out[0].reshape(-1, 3).tolist() == [[10, 20, 30], [40, 50, 60], [1, 1, 1], [1, 1, 1]]
