"""Sizes against the logits stride: the stride of a genotype's head input, and the refusal that suggests sizes."""

import pytest

from mobileseg.arch import schema_io
from mobileseg.run.exit_codes import EXIT_BAD_INPUT, BadInput
from mobileseg.run.sizes import check_size, logits_stride

TWO_BRANCHES = """
name: two_branches
branches:
  - name: fine
    source: null
    cells: [{op: conv, width: 8, stride: 2}, {op: conv, width: 8, stride: 2}]
  - name: coarse
    source: {branch: fine}
    cells: [{op: conv, width: 8, stride: 2}, {op: conv, width: 8, stride: 2}]
head: {op: light, inputs: [{branch: coarse}, {branch: fine}], width: 8}
"""


def test_the_logits_stride_is_the_stride_of_the_head_s_first_input():
    genotype = schema_io.loads(TWO_BRANCHES)
    assert logits_stride(genotype) == 16
    swapped = schema_io.loads(TWO_BRANCHES.replace("[{branch: coarse}, {branch: fine}]",
                                                   "[{branch: fine}, {branch: coarse}]"))
    assert logits_stride(swapped) == 4


@pytest.mark.parametrize("size, stride", [((64, 80), 16), ((8, 8), 8), ((360, 480), 8)])
def test_multiples_of_the_stride_pass(size, stride):
    assert check_size("--input_size", size, stride, "net.yaml") is None


@pytest.mark.parametrize("size, stride, suggestion", [
    ((180, 240), 8, "e.g. 176x240 or 184x240"),
    ((5, 70), 16, "e.g. 16x64 or 16x80"),  # never below one stride
])
def test_other_sizes_are_bad_input_naming_the_flag_and_the_nearest_multiples(size, stride, suggestion):
    with pytest.raises(BadInput) as error:
        check_size("--model_size", size, stride, "net.yaml")
    message = str(error.value)
    assert message.startswith(f"--model_size {size[0]}x{size[1]}: height and width must be multiples of {stride}")
    assert message.endswith(f"the output stride of the logits of net.yaml; {suggestion}")
    assert error.value.exit_code == EXIT_BAD_INPUT
