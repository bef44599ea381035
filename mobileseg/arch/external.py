"""Networks another library builds, trained, quantized and exported by mobileseg like a genotype's.

A genotype file names one with a single key besides its name::

    name: keras_hub_segformer_b0
    external: keras_hub_segformer_b0

Such a network has no cells, so it cannot be searched or put in a latency table; it is
an outside implementation to measure ours against (issue 8's Pareto benchmark). The
model takes the same [0, 255] images as every mobileseg network: mobileseg's image
normalisation (`mobileseg.data.normalization`, the ImageNet statistics
keras-hub's SegFormer preprocessor applies) comes first, then the library's network.

Known networks (`NETWORKS`):

- ``keras_hub_segformer_b0``: keras-hub's SegFormer-B0 (Xie et al., "SegFormer: Simple and
  Efficient Design for Semantic Segmentation with Transformers", NeurIPS 2021):
  ``keras_hub.models.SegFormerImageSegmenter`` over ``MiTBackbone`` with the ``mit_b0``
  preset's settings (depths 2/2/2/2, dims 32/64/160/256, heads 1/2/5/8, reduction ratios
  8/4/2/1, patch sizes 7/3/3/3, strides 4/2/2/2, drop path 0.1) and a 256-wide decoder,
  randomly initialised: no preset is downloaded. Its logits come resized to the input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from mobileseg.arch.genotype import SCHEMA_VERSION
from mobileseg.data.normalization import MEAN_RGB, STD_RGB


@dataclass(frozen=True)
class External:
    """A network built by another library: ``name`` for files and logs, ``external`` the builder's key."""

    name: str
    external: str
    schema_version: int = SCHEMA_VERSION

    def logits_stride(self) -> int:
        """The multiple every input side must be (the deepest stride the library's reshapes need)."""
        return NETWORKS[self.external].multiple

    def check_input_size(self, size: tuple[int, int] | None, what: str = "input") -> None:
        """Raise a `GenotypeError` naming the network and ``what`` for a size its library cannot build.

        ``None`` stands for each image's own size, which a square-only network cannot take.

        Example:
            >>> External("hub", "keras_hub_segformer_b0").check_input_size((192, 256), "--input_size")
            Traceback (most recent call last):
            ...
            mobileseg.arch.genotype.GenotypeError: hub (keras_hub_segformer_b0): --input_size must be square (its library reshapes tokens to sqrt(N) x sqrt(N)), got 192x256
        """
        from mobileseg.arch.genotype import GenotypeError

        if NETWORKS[self.external].square and (size is None or size[0] != size[1]):
            got = "each image's own size" if size is None else f"{size[0]}x{size[1]}"
            raise GenotypeError(f"{self.name} ({self.external}): {what} must be square (its library reshapes "
                                f"tokens to sqrt(N) x sqrt(N)), got {got}")

    def build(self, num_classes: int, input_size: tuple[int, int], batch_size: int | None = None,
              name: str | None = None) -> keras.Model:
        """The functional model: image (B, H, W, 3) in [0, 255] -> logits (B, h, w, num_classes)."""
        image = keras.Input((*input_size, 3), batch_size=batch_size, name="image")
        normalized = keras.layers.Normalization(mean=MEAN_RGB, variance=np.square(STD_RGB), name="normalize")(image)
        self.check_input_size(input_size)
        network = NETWORKS[self.external].build(num_classes, input_size)
        return keras.Model(image, network(normalized), name=name or self.name)


def keras_hub_segformer_b0(num_classes: int, input_size: tuple[int, int]) -> keras.Model:
    """keras-hub's SegFormer-B0 for ``input_size`` images, randomly initialised (see the module doc)."""
    import keras_hub

    encoder = keras_hub.models.MiTBackbone(
        layerwise_depths=[2, 2, 2, 2], num_layers=4, layerwise_num_heads=[1, 2, 5, 8],
        layerwise_sr_ratios=[8, 4, 2, 1], max_drop_path_rate=0.1, layerwise_patch_sizes=[7, 3, 3, 3],
        layerwise_strides=[4, 2, 2, 2], hidden_dims=[32, 64, 160, 256], image_shape=(*input_size, 3))
    backbone = keras_hub.models.SegFormerBackbone(image_encoder=encoder, projection_filters=256)
    return keras_hub.models.SegFormerImageSegmenter(backbone=backbone, num_classes=num_classes)


@dataclass(frozen=True)
class Network:
    """How to build one known network: the builder, the multiple input sides must be, square inputs only."""

    build: Callable[[int, tuple[int, int]], keras.Model]
    multiple: int
    square: bool


NETWORKS = {"keras_hub_segformer_b0": Network(keras_hub_segformer_b0, multiple=32, square=True)}


def from_dict(data: dict, source: str) -> External:
    """An `External` from a genotype file's data; errors name ``source`` and the key.

    Example:
        >>> from_dict({"name": "hub", "external": "keras_hub_segformer_b0"}, "hub.yaml").logits_stride()
        32
        >>> from_dict({"name": "hub", "external": "timm_vit"}, "hub.yaml")
        Traceback (most recent call last):
        ...
        mobileseg.arch.genotype.GenotypeError: hub.yaml: external: unknown network 'timm_vit'; expected one of keras_hub_segformer_b0
    """
    from mobileseg.arch.genotype import GenotypeError

    unknown = sorted(set(data) - {"name", "external", "schema_version"})
    if unknown:
        raise GenotypeError(f"{source}: {unknown[0]}: not allowed beside 'external' (allowed: name, external)")
    if not isinstance(data.get("name"), str) or not data["name"]:
        raise GenotypeError(f"{source}: name: a non-empty string is required")
    if data["external"] not in NETWORKS:
        raise GenotypeError(f"{source}: external: unknown network {data['external']!r}; "
                            f"expected one of {', '.join(NETWORKS)}")
    return External(name=data["name"], external=data["external"])
