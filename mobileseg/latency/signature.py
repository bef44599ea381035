"""The canonical signature of one block, the key of the latency table (docs/architecture.md, section 3).

A block's latency depends only on what it computes and how it ships: the op, its
input and output shapes, kernel, stride, expansion, inner width, a few op-specific
settings (heads, key_dim, sr_ratio, ...) and the quantization of the exported
model. `BlockSignature` holds exactly that, and its `key` is a stable,
human-readable string that parses back to an equal signature::

    mbconv|in=45x60x32|out=45x60x32|k=3|s=1|e=4|w=0|q=int8
    sea_attention|in=12x15x128|out=12x15x128|k=1|s=1|e=2|w=128|heads=4|key_dim=16|q=int8

The device, runtime and thread count are not in the key: one latency table holds
one device fingerprint (see `mobileseg.latency.table`), so the full identity of a
measurement is (table fingerprint, block key).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping

QUANTIZATIONS = ("int8", "fp16", "fp32")
RESERVED_FIELDS = ("in", "out", "k", "s", "e", "w", "q")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_INT = re.compile(r"^-?[0-9]+$")
_SHAPE = re.compile(r"^[1-9][0-9]*x[1-9][0-9]*x[1-9][0-9]*$")


def _normalise_number(value, what: str):
    """int stays int; an integral float becomes int (so 4.0 and 4 give one key)."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{what} must be finite, got {value!r}")
        return int(value) if value.is_integer() else value
    raise ValueError(f"{what} must be a number, got {type(value).__name__} {value!r}")


def _normalise_extra_value(name: str, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return _normalise_number(value, f"extra {name!r}")
    if isinstance(value, str):
        if _SHAPE.match(value):
            return value
        if not _TOKEN.match(value) or value in ("true", "false"):
            raise ValueError(f"extra {name!r}: string value {value!r} must match "
                             f"{_TOKEN.pattern} (or be a shape HxWxC) and not be 'true'/'false'")
        return value
    if isinstance(value, tuple) and len(value) == 3 and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in value):
        return format_shape(value)
    raise ValueError(f"extra {name!r}: value must be int, float, bool or str, or a shape tuple "
                     f"(h, w, c) of positive ints, got {type(value).__name__} {value!r}")


def format_shape(shape) -> str:
    """``(12, 15, 64)`` -> ``"12x15x64"``, as shapes appear in keys.

    Example:
        >>> format_shape((12, 15, 64))
        '12x15x64'
    """
    return "x".join(str(int(d)) for d in shape)


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"12x15x64"`` -> ``(12, 15, 64)``; the inverse of `format_shape`.

    Raises:
        ValueError: not three positive integers joined by ``x``.

    Example:
        >>> parse_shape("12x15x64")
        (12, 15, 64)
    """
    if not isinstance(text, str) or not _SHAPE.match(text):
        raise ValueError(f"{text!r} is not a shape HxWxC")
    return tuple(int(d) for d in text.split("x"))


def _format_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _parse_value(text: str):
    if text in ("true", "false"):
        return text == "true"
    if _INT.match(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def _shape(value, what: str) -> tuple[int, int, int]:
    try:
        shape = tuple(value)
    except TypeError:
        raise ValueError(f"{what} must be (h, w, c), got {value!r}") from None
    if len(shape) != 3 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"{what} must be three positive ints (h, w, c), got {value!r}")
    return tuple(int(d) for d in shape)


@dataclasses.dataclass(frozen=True)
class BlockSignature:
    """What one block computes and how it ships: the key of a latency-table entry.

    Args:
        op: the block type, e.g. ``"mbconv"``, ``"conv_bn_act"``, ``"sea_attention"``
            (letters, digits, ``_``).
        input: input shape ``(h, w, c)`` without batch.
        output: output shape ``(h, w, c)`` without batch.
        kernel: kernel size (1 when the op has none).
        stride: spatial stride.
        expansion: channel expansion ratio (int or float; 4.0 is stored as 4).
        width: the block's inner width (hidden channels, attention embedding);
            0 when the op has no such setting.
        extra: op-specific settings as a mapping or ``(key, value)`` pairs; stored
            as a tuple sorted by key. Values are int, float, bool, a plain token string,
            or a shape: a tuple ``(h, w, c)`` (e.g. a second input's) is stored as the
            string ``"HxWxC"``, written in keys like ``in``/``out``.
        quantization: the exported model's mode, ``int8``, ``fp16`` or ``fp32``.

    Raises:
        ValueError: a field outside the rules above, naming it.

    Example:
        >>> sig = BlockSignature("mbconv", (45, 60, 32), (45, 60, 32), kernel=3,
        ...                      expansion=4, extra={"se": True})
        >>> sig.key
        'mbconv|in=45x60x32|out=45x60x32|k=3|s=1|e=4|w=0|se=true|q=int8'
        >>> BlockSignature.from_key(sig.key) == sig
        True
    """

    op: str
    input: tuple[int, int, int]
    output: tuple[int, int, int]
    kernel: int = 1
    stride: int = 1
    expansion: int | float = 1
    width: int = 0
    extra: tuple[tuple[str, int | float | bool | str], ...] = ()
    quantization: str = "int8"

    def __post_init__(self):
        if not isinstance(self.op, str) or not _NAME.match(self.op):
            raise ValueError(f"op must match {_NAME.pattern}, got {self.op!r}")
        object.__setattr__(self, "input", _shape(self.input, "input"))
        object.__setattr__(self, "output", _shape(self.output, "output"))
        for name in ("kernel", "stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width < 0:
            raise ValueError(f"width must be an int >= 0, got {self.width!r}")
        expansion = _normalise_number(self.expansion, "expansion")
        if expansion <= 0:
            raise ValueError(f"expansion must be > 0, got {self.expansion!r}")
        object.__setattr__(self, "expansion", expansion)
        pairs = list(self.extra.items()) if isinstance(self.extra, Mapping) else list(self.extra)
        extra = {}
        for pair in pairs:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise ValueError(f"extra must hold (key, value) pairs, got {pair!r}")
            name, value = pair
            if not isinstance(name, str) or not _NAME.match(name):
                raise ValueError(f"extra key must match {_NAME.pattern}, got {name!r}")
            if name in RESERVED_FIELDS:
                raise ValueError(f"extra key {name!r} clashes with a signature field "
                                 f"({', '.join(RESERVED_FIELDS)})")
            if name in extra:
                raise ValueError(f"extra key {name!r} is given twice")
            extra[name] = _normalise_extra_value(name, value)
        object.__setattr__(self, "extra", tuple(sorted(extra.items())))
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, "
                             f"got {self.quantization!r}")

    @property
    def key(self) -> str:
        """The canonical string: ``op|in=HxWxC|out=HxWxC|k=|s=|e=|w=|<extra sorted>|q=``."""
        parts = [self.op,
                 "in=" + "x".join(map(str, self.input)),
                 "out=" + "x".join(map(str, self.output)),
                 f"k={self.kernel}", f"s={self.stride}",
                 f"e={_format_value(self.expansion)}", f"w={self.width}"]
        parts += [f"{name}={_format_value(value)}" for name, value in self.extra]
        parts.append(f"q={self.quantization}")
        return "|".join(parts)

    def __str__(self) -> str:
        return self.key

    @classmethod
    def from_key(cls, key: str) -> BlockSignature:
        """Parse a canonical key back into a signature.

        Args:
            key: a string made by `BlockSignature.key`.

        Raises:
            ValueError: a malformed key, naming it and what is wrong.

        Example:
            >>> BlockSignature.from_key("conv|in=8x8x4|out=4x4x8|k=3|s=2|e=1|w=0|q=fp16").stride
            2
        """
        op, *fields = key.split("|")
        values = {}
        for field in fields:
            name, sep, value = field.partition("=")
            if not sep or not name:
                raise ValueError(f"latency key {key!r}: field {field!r} is not name=value")
            if name in values:
                raise ValueError(f"latency key {key!r}: field {name!r} appears twice")
            values[name] = value
        missing = [name for name in RESERVED_FIELDS if name not in values]
        if missing:
            raise ValueError(f"latency key {key!r} lacks fields {missing}")
        try:
            signature = cls(
                op=op,
                input=tuple(int(d) for d in values.pop("in").split("x")),
                output=tuple(int(d) for d in values.pop("out").split("x")),
                kernel=int(values.pop("k")),
                stride=int(values.pop("s")),
                expansion=_parse_value(values.pop("e")),
                width=int(values.pop("w")),
                quantization=values.pop("q"),
                extra={name: _parse_value(value) for name, value in values.items()},
            )
        except ValueError as error:
            raise ValueError(f"latency key {key!r}: {error}") from None
        if signature.key != key:
            raise ValueError(f"latency key {key!r} is not canonical; expected {signature.key!r}")
        return signature

    def extra_dict(self) -> dict:
        """The op-specific settings as a dict.

        Example:
            >>> BlockSignature("attn", (4, 4, 8), (4, 4, 8), extra={"heads": 2}).extra_dict()
            {'heads': 2}
        """
        return dict(self.extra)
