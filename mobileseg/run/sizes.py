"""Input sizes against a network's output stride: the stride of its logits and the check of a size flag.

Example:
    >>> check_size("--input_size", (184, 240), 8, "mv3.yaml")  # multiples of 8: nothing to say
"""

from __future__ import annotations

from mobileseg.run.exit_codes import BadInput


def logits_stride(genotype) -> int:
    """Output stride of a genotype's logits: the stride of the head's first (finest) input.

    Example:
        >>> from mobileseg.arch import schema_io
        >>> logits_stride(schema_io.loads('''
        ... name: two_scales
        ... branches:
        ...   - name: main
        ...     source: null
        ...     cells: [{op: conv, width: 8, stride: 2}, {op: conv, width: 8, stride: 2},
        ...             {op: conv, width: 8, stride: 2}]
        ... head: {op: light, inputs: [{branch: main, cell: 1}, {branch: main, cell: 2}], width: 8}
        ... '''))
        4
    """
    from mobileseg.arch.external import External

    if isinstance(genotype, External):
        return genotype.logits_stride()
    branch, index = genotype.resolve(genotype.head.inputs[0])
    return genotype.cell_strides()[branch][index]


def check_size(flag: str, size: tuple[int, int], stride: int, what: str) -> None:
    """Refuse a size whose sides are not multiples of ``stride`` (suggesting the nearest that are).

    Example:
        >>> check_size("--input_size", (180, 240), 8, "mv3.yaml")
        Traceback (most recent call last):
        ...
        mobileseg.run.exit_codes.BadInput: --input_size 180x240: height and width must be multiples of 8, the output stride of the logits of mv3.yaml; e.g. 176x240 or 184x240
    """
    if all(side % stride == 0 for side in size):
        return
    down = [max(stride, side // stride * stride) for side in size]
    up = [-(-side // stride) * stride for side in size]
    raise BadInput(f"{flag} {size[0]}x{size[1]}: height and width must be multiples of {stride}, the output "
                   f"stride of the logits of {what}; e.g. {down[0]}x{down[1]} or {up[0]}x{up[1]}")
