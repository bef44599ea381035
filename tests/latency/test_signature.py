"""BlockSignature: canonical keys that parse back, and strict validation."""

import dataclasses

import pytest

from mobileseg.latency.signature import BlockSignature

SIGNATURES = [
    BlockSignature("mbconv", (45, 60, 32), (45, 60, 32), kernel=3, expansion=4),
    BlockSignature("mbconv", (90, 120, 16), (45, 60, 24), kernel=5, stride=2, expansion=2.5,
                   quantization="fp16"),
    BlockSignature("sea_attention", (12, 15, 128), (12, 15, 128), expansion=2, width=128,
                   extra={"heads": 4, "key_dim": 16, "sr_ratio": 0.5, "norm": "bn", "gate": False}),
    BlockSignature("conv", (1, 1, 1), (1, 1, 1), quantization="fp32"),
]


@pytest.mark.parametrize("signature", SIGNATURES, ids=lambda s: s.key)
def test_key_round_trip(signature):
    parsed = BlockSignature.from_key(signature.key)
    assert parsed == signature
    assert parsed.key == signature.key
    assert hash(parsed) == hash(signature)


def test_key_is_readable_and_ordered():
    sig = BlockSignature("attn", (8, 8, 64), (8, 8, 64), extra={"sr_ratio": 2, "heads": 4})
    assert sig.key == "attn|in=8x8x64|out=8x8x64|k=1|s=1|e=1|w=0|heads=4|sr_ratio=2|q=int8"
    assert str(sig) == sig.key
    assert sig.extra == (("heads", 4), ("sr_ratio", 2))


def test_equal_settings_give_one_key():
    a = BlockSignature("mbconv", [8, 8, 4], [8, 8, 4], expansion=4.0, extra=[("b", 1.0), ("a", 2)])
    b = BlockSignature("mbconv", (8, 8, 4), (8, 8, 4), expansion=4, extra={"a": 2, "b": 1})
    assert a == b and a.key == b.key
    assert isinstance(a.expansion, int) and a.input == (8, 8, 4)


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SIGNATURES[0].kernel = 5


@pytest.mark.parametrize("kwargs, message", [
    (dict(op="mb conv"), "op must match"),
    (dict(input=(8, 8)), "input must be three positive ints"),
    (dict(output=(8, 0, 4)), "output must be three positive ints"),
    (dict(kernel=0), "kernel must be an int >= 1"),
    (dict(stride=1.5), "stride must be an int >= 1"),
    (dict(expansion=0), "expansion must be > 0"),
    (dict(expansion=float("nan")), "expansion must be finite"),
    (dict(width=-1), "width must be an int >= 0"),
    (dict(quantization="int4"), "quantization must be one of int8, fp16, fp32"),
    (dict(extra={"k": 3}), "extra key 'k' clashes"),
    (dict(extra={"heads": [1, 2]}), "extra 'heads': value must be int, float, bool or str"),
    (dict(extra={"mode": "12"}), "extra 'mode': string value '12'"),
    (dict(extra={"mode": "a|b"}), "extra 'mode': string value 'a|b'"),
    (dict(extra=[("heads", 1), ("heads", 2)]), "extra key 'heads' is given twice"),
])
def test_rejects_bad_fields(kwargs, message):
    base = dict(op="conv", input=(8, 8, 4), output=(8, 8, 4))
    with pytest.raises(ValueError, match=message.replace("|", r"\|")):
        BlockSignature(**{**base, **kwargs})


@pytest.mark.parametrize("key, message", [
    ("conv|in=8x8x4|out=8x8x4|k=3|s=1|e=1|w=0", "lacks fields \\['q'\\]"),
    ("conv|in=8x8x4|out=8x8x4|k=3|s=1|e=1|w=0|q=int8|q=fp16", "appears twice"),
    ("conv|in=8x8x4|out=8x8x4|k=3|s=1|e=1|w=0|b=1|a=2|q=int8", "not canonical"),
    ("conv|in=8x8x4|out=8x8x4|k=3|s=1|e=1.0|w=0|q=int8", "not canonical"),
    ("conv|in=8x8|out=8x8x4|k=3|s=1|e=1|w=0|q=int8", "input must be three"),
    ("conv|in=8x8x4|out=8x8x4|k=three|s=1|e=1|w=0|q=int8", "latency key"),
    ("conv|in=8x8x4|garbage|k=3|s=1|e=1|w=0|q=int8", "is not name=value"),
])
def test_from_key_rejects_malformed(key, message):
    with pytest.raises(ValueError, match=message):
        BlockSignature.from_key(key)


def test_shapes_in_extra_are_written_like_in_and_out():
    sig = BlockSignature("fuse", (8, 8, 16), (8, 8, 16), extra={"ctx": (4, 4, 32), "mode": "sum"})
    assert sig.key == "fuse|in=8x8x16|out=8x8x16|k=1|s=1|e=1|w=0|ctx=4x4x32|mode=sum|q=int8"
    assert BlockSignature.from_key(sig.key) == sig
    assert sig.extra_dict()["ctx"] == "4x4x32"
    with pytest.raises(ValueError, match="a shape tuple"):
        BlockSignature("fuse", (8, 8, 16), (8, 8, 16), extra={"ctx": (4, 0, 32)})
