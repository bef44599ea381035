"""Token merging without retraining: a trained network's efficient-attention blocks rewritten to merge tokens.

Kienzle, Kantonis, Schön, Lienhart, "Segformer++: Efficient Token-Merging Strategies for
High-Resolution Semantic Segmentation", IEEE MIPR 2024: merging adds no weights, so a
SegFormer trained without it can merge at inference (their Cityscapes MiT-B5, "HQ" preset:
1.61x faster at 82.31 against 82.39 mIoU, with no retraining).

A ``.keras`` file carries its genotype as its functional config: `mobileseg.arch.builder`
makes one layer per cell, named ``<branch>_<index>_<op>``, whose config holds the cell's
fields; an ``efficient_attention`` cell is a `SegFormerBlock` with ``sr_ratio``,
``tome_mode``, ``tome_ratio`` and ``tome_stride``. `with_token_merging` sets the merging
fields of every such block, rebuilds the model from the edited config and copies the
weights, after checking that the rebuilt model has exactly the original's weights (names
and shapes, in order).

One ratio serves the whole network; `merge_settings` places it per block as Segformer++'s
presets do (``tome_cfg`` of its ``bsm-hq`` and ``bsm-fast`` configs): bipartite soft
matching on the keys/values where they are spatially reduced by 4 or 8 (the
high-resolution stages, whose queries are too many to match cheaply), on the queries
where the reduction is 1 or 2; the destinations are every 2nd token (keys/values) or
every 4th (queries) in each direction, the stride doubled until the sources outnumber the
tokens to merge (0.9 needs stride 4: ``1 - 1/4**2 = 0.9375``). A block whose token grid
is smaller than its stride has no destinations and is left unmerged
(`mobileseg.blocks.token_merging.BipartitePlan`). Ratio 0 switches merging off in every
block (also in a network built with merging).

Method ``grid`` (`merge_settings`) keeps that placement on a fixed ``s x s`` grid: keys/values
averaged in windows (Segformer++'s neighbour pooling, ``kv_pool``) in stages 1-2, queries
averaged in windows and each token's output reconstructed from the 9 nearest windows by
feature similarity (``q_grid``: Liang et al., "Expediting Large-Scale Vision Transformer for
Dense Prediction without Fine-tuning", NeurIPS 2022, in the static form of
`mobileseg.blocks.grid_merging`) in stages 3-4: no TOPK_V2, GATHER or SELECT, so XNNPACK
runs the int8 and fp32 files whole. Its ratio is ``1 - 1/s**2`` (0.75, 0.9375). Queries are
not merged in stages 1-2: measured at 360x480 (``benchmarks/tome_speed.py``), reconstructing
their 10800 and 2700 tokens cost more than merging them saved (0.89x in int8 at 0.75).

Example:
    >>> from mobileseg.arch import builder, schema_io
    >>> g = schema_io.load("search_space/references/segformer_b0.yaml")
    >>> model = builder.build_model(g, num_classes=4, input_size=(64, 64))
    >>> merged = with_token_merging(model, 0.5)
    >>> settings = block_settings(merged)
    >>> [(s["sr_ratio"], s["tome_mode"], s["tome_stride"]) for s in settings.values()][::2]
    [(8, 'kv_bsm', 2), (4, 'kv_bsm', 2), (2, 'q_bsm', 4), (1, 'q_bsm', 4)]
"""

from __future__ import annotations

import copy
import math

import keras

from mobileseg.blocks.token_merging import pool_size

METHODS = ("bsm", "grid")
"""How `with_token_merging` merges: Segformer++'s bipartite soft matching, or the XNNPACK-whole grid merge."""
BLOCK = "mobileseg>SegFormerBlock"
"""The registered name of the layer an ``efficient_attention`` cell builds."""
KV_MERGE_MIN_SR = 4
"""Blocks whose keys/values are reduced at least this much merge keys/values; the others, queries."""
KV_STRIDE, Q_STRIDE = 2, 4


class TomeError(ValueError):
    """A ratio out of range or a network token merging cannot rewrite; the message says which."""


def check_ratio(ratio) -> float:
    """The ratio as a float if ``0 <= ratio < 1``, else a `TomeError`.

    Example:
        >>> check_ratio(0.5)
        0.5
        >>> check_ratio(1)
        Traceback (most recent call last):
        ...
        mobileseg.arch.tome.TomeError: token merging ratio must be a number in [0, 1) (0: off), got 1
    """
    ok = isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and math.isfinite(ratio)
    if not ok or not 0.0 <= ratio < 1.0:
        raise TomeError(f"token merging ratio must be a number in [0, 1) (0: off), got {ratio!r}")
    return float(ratio)


def check_method(method) -> str:
    """``method`` if it is one of `METHODS`, else a `TomeError`.

    Example:
        >>> check_method("grid")
        'grid'
        >>> check_method("topk")
        Traceback (most recent call last):
        ...
        mobileseg.arch.tome.TomeError: token merging method must be one of bsm, grid, got 'topk'
    """
    if method not in METHODS:
        raise TomeError(f"token merging method must be one of {', '.join(METHODS)}, got {method!r}")
    return method


def check_setting(ratio, method: str = "bsm") -> float:
    """The ratio as a float if ``method`` (one of `METHODS`) can merge at it, else a `TomeError`.

    Every ratio in [0, 1) suits ``bsm``; ``grid`` merges ``s x s`` windows, so its ratio is 0
    or ``1 - 1/s**2``.

    Example:
        >>> check_setting(0.5), check_setting(0.75, "grid"), check_setting(0, "grid")
        (0.5, 0.75, 0.0)
        >>> check_setting(0.5, "grid")
        Traceback (most recent call last):
        ...
        mobileseg.arch.tome.TomeError: token merging method grid merges s x s windows, so the ratio must be 1 - 1/s**2 (0.75 for 2x2, 0.9375 for 4x4), got 0.5
    """
    ratio = check_ratio(ratio)
    if check_method(method) == "grid" and ratio > 0.0:
        try:
            pool_size("grid", ratio, "q_grid")
        except ValueError as error:
            raise TomeError(f"token merging method grid merges s x s windows, so the ratio must be 1 - 1/s**2 "
                            f"(0.75 for 2x2, 0.9375 for 4x4), got {ratio}") from error
    return ratio


def merge_settings(ratio: float, sr_ratio: int, method: str = "bsm") -> dict:
    """The ``tome_mode``, ``tome_ratio`` and ``tome_stride`` of a block with key/value reduction ``sr_ratio``.

    ``bsm``: Segformer++'s presets (module doc). ``grid``: the same placement on a fixed
    ``s x s`` grid with ``ratio = 1 - 1/s**2``, in ops XNNPACK runs whole: keys/values
    averaged in windows (``kv_pool``, Segformer++'s neighbour pooling) where they are reduced
    by 4 or 8, queries merged and reconstructed by similarity (``q_grid``,
    `mobileseg.blocks.grid_merging`) where the reduction is 1 or 2.

    Example:
        >>> merge_settings(0.5, 8)
        {'tome_mode': 'kv_bsm', 'tome_ratio': 0.5, 'tome_stride': 2}
        >>> merge_settings(0.9, 8)["tome_stride"], merge_settings(0.9, 1)["tome_mode"]
        (4, 'q_bsm')
        >>> merge_settings(0.75, 8, "grid")["tome_mode"], merge_settings(0.75, 2, "grid")["tome_mode"]
        ('kv_pool', 'q_grid')
    """
    ratio = check_setting(ratio, method)
    if ratio == 0.0:
        return {"tome_mode": "none", "tome_ratio": 0.0, "tome_stride": KV_STRIDE}
    keys_values = sr_ratio >= KV_MERGE_MIN_SR
    if method == "grid":
        return {"tome_mode": "kv_pool" if keys_values else "q_grid", "tome_ratio": ratio, "tome_stride": KV_STRIDE}
    stride = KV_STRIDE if keys_values else Q_STRIDE
    while 1.0 - 1.0 / stride ** 2 < ratio:  # at most 1 - 1/stride**2 of the tokens are sources
        stride *= 2
    return {"tome_mode": "kv_bsm" if keys_values else "q_bsm", "tome_ratio": ratio, "tome_stride": stride}


def files_suffix(ratio: float, method: str = "bsm") -> str:
    """What export adds to its folder and model names for merging at ``ratio``: ``_tome0.5``, ``_tome_grid0.75``.

    Example:
        >>> files_suffix(0.5), files_suffix(0.75, "grid")
        ('_tome0.5', '_tome_grid0.75')
    """
    return f"_tome{ratio:g}" if check_method(method) == "bsm" else f"_tome_{method}{ratio:g}"


def _blocks(config):
    """Every `SegFormerBlock` layer config inside a (nested) model config."""
    if isinstance(config, dict):
        if config.get("registered_name") == BLOCK:
            yield config
            return
        for value in config.values():
            yield from _blocks(value)
    elif isinstance(config, list):
        for value in config:
            yield from _blocks(value)


def block_settings(model: keras.Model) -> dict[str, dict]:
    """Layer name -> ``sr_ratio`` and merging fields of every efficient-attention block of ``model``."""
    return {block["config"]["name"]: {key: block["config"][key]
                                      for key in ("sr_ratio", "tome_mode", "tome_ratio", "tome_stride")}
            for block in _blocks(model.get_config())}


def check_same_weights(original: keras.Model, rebuilt: keras.Model, source: str) -> None:
    """Raise a `TomeError` naming the first weight that differs in path or shape (or is missing)."""
    before = [(weight.path, tuple(weight.shape)) for weight in original.weights]
    after = [(weight.path, tuple(weight.shape)) for weight in rebuilt.weights]
    if before == after:
        return
    for index in range(max(len(before), len(after))):
        old = before[index] if index < len(before) else "(none)"
        new = after[index] if index < len(after) else "(none)"
        if old != new:
            raise TomeError(f"{source}: the network rebuilt with token merging has other weights than the "
                            f"original ({len(after)} against {len(before)}; weight {index}: {new} against {old}); "
                            "merging must add no weights, so its layers do not match the genotype's")


def with_token_merging(model: keras.Model, ratio: float, source: str | None = None,
                       method: str = "bsm") -> keras.Model:
    """A copy of ``model`` whose efficient-attention blocks merge tokens at ``ratio``, with the same weights.

    Args:
        model: a float functional model built by `mobileseg.arch.builder` (loaded from ``.keras``).
        ratio: share of the tokens each block merges away, in [0, 1); 0 switches merging off.
        source: names the model in errors (default: its name).
        method: one of `METHODS` (`merge_settings`).

    Returns:
        A new model (new layers, the original's weights).

    Raises:
        TomeError: the ratio is out of range (or not ``1 - 1/s**2`` for ``grid``), the method
            unknown, the model has no efficient-attention block
            (a quantization-aware model has none: it is flattened) or cannot be rebuilt
            from its config, or the rebuilt model's weights differ from the original's.
    """
    ratio = check_setting(ratio, method)
    source = source or model.name
    try:
        config = copy.deepcopy(model.get_config())
    except NotImplementedError:
        raise TomeError(f"{source}: a subclassed model without a config cannot be rebuilt with token merging") from None
    blocks = list(_blocks(config))
    if not blocks:
        raise TomeError(f"{source} has no efficient-attention block (no efficient_attention cell, e.g. "
                        "search_space/references/segformer_b0.yaml) to merge tokens in; a quantization-aware "
                        "model is flattened: merge tokens in the float model, then quantize it")
    for block in blocks:
        block["config"].update(merge_settings(ratio, block["config"]["sr_ratio"], method))
    try:
        rebuilt = model.__class__.from_config(config)
    except ValueError as error:  # a block refusing its settings (check_tome) names itself
        raise TomeError(f"{source}: cannot rebuild with token merging at {ratio}: {error}") from None
    check_same_weights(model, rebuilt, source)
    rebuilt.set_weights(model.get_weights())
    return rebuilt
