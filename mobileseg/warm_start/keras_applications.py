"""keras.applications' MobileNetV3 ImageNet weights as the first weights of a MobileNetV3 backbone.

``--init imagenet:FILE`` takes the file ``keras.applications.MobileNetV3Small(weights="imagenet")``
(or ``MobileNetV3Large``) downloads, e.g. ``weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5``,
when the user has it (nothing is downloaded here), or any ``save_weights`` file of such a model:
Keras' own loader reads it into a ``MobileNetV3Small`` / ``MobileNetV3Large`` (alpha 1.0, without
or with the classifier top: the first of the four that takes the file), and its layers are renamed
to those of the genotype's ``main`` branch, which is how the references
``search_space/references/mobilenetv3_{small,large}_lraspp.yaml`` spell the same network:

- the first cell (a conv) takes ``conv`` / ``conv_bn``;
- the k-th ``mbconv`` cell after it takes block k: ``expanded_conv[_k]_{expand,depthwise,project}``
  and their ``_bn``, ``_squeeze_excite_conv`` (our ``se/reduce``) and ``_squeeze_excite_conv_1``
  (``se/expand``);
- the next conv cell takes ``conv_1`` / ``conv_1_bn``, the 1x1 convolution to 576 (960) channels.

Shapes decide the rest, as for every ``--init`` (`mobileseg.warm_start.matching`): the head and
anything the application lacks are reported missing.

Input scaling: keras.applications' MobileNetV3 first maps pixels to [-1, 1] (``x / 127.5 - 1``),
mobileseg networks normalise with the ImageNet mean and deviation (`mobileseg.data.normalization`).
The difference is folded into the first convolution, exactly except at the padded border: its
kernel is scaled by ``2 * std / 255`` per input channel, and the constant it then misses,
``sum(kernel * (2 * mean / 255 - 1))`` per output channel, is taken off the batch norm's moving mean.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import keras
import numpy as np

from mobileseg.data.normalization import MEAN_RGB, STD_RGB
from mobileseg.warm_start.matching import InitError

VARIANTS = (("MobileNetV3Small", False), ("MobileNetV3Small", True), ("MobileNetV3Large", False),
            ("MobileNetV3Large", True))
"""The keras.applications models a file is tried on, in this order (alpha 1.0, not minimalistic)."""

BLOCK_LAYERS = {"expand/conv": "expand", "expand/bn": "expand_bn", "depthwise/conv": "depthwise",
                "depthwise/bn": "depthwise_bn", "se/reduce": "squeeze_excite_conv",
                "se/expand": "squeeze_excite_conv_1", "project/conv": "project", "project/bn": "project_bn"}
"""Sublayer of a mobileseg ``mbconv`` cell -> suffix of the keras.applications layer of its block."""


def load_application(path: Path) -> keras.Model:
    """The first of `VARIANTS` that Keras' ``load_weights`` reads ``path`` into.

    Raises:
        InitError: none of them takes it (the message gives the first error).
    """
    errors = []
    for name, top in VARIANTS:  # the weights do not depend on the input size: the smallest it takes
        model = getattr(keras.applications, name)(weights=None, include_top=top, input_shape=(32, 32, 3))
        try:
            with warnings.catch_warnings():  # Keras warns once per container it walks, for every file
                warnings.simplefilter("ignore", UserWarning)
                model.load_weights(path)
            return model
        except Exception as error:  # Keras raises many types for a file of another model
            errors.append(f"{name}{' with top' if top else ''}: {' '.join(str(error).split())[:200]}")
    raise InitError(f"--init imagenet:{path}: not a weights file of keras.applications MobileNetV3Small or "
                    f"MobileNetV3Large ({errors[0]})")


def layer_names(genotype, application: keras.Model) -> dict[str, str]:
    """``{keras.applications layer: mobileseg layer path}`` for the genotype's ``main`` branch.

    Raises:
        InitError: the genotype has no ``main`` branch that starts with a conv.
    """
    main = next((b for b in getattr(genotype, "branches", ()) if b.name == "main"), None)
    if main is None or not main.cells or main.cells[0].OP != "conv":
        raise InitError(f"--init imagenet: {genotype.name} has no 'main' branch starting with a conv, so it is "
                        "not a MobileNetV3 backbone")
    names = {"conv": "main_0_conv/conv", "conv_bn": "main_0_conv/bn"}
    present = {layer.name for layer in application.layers}
    block = 0
    for index, cell in enumerate(main.cells[1:], start=1):
        prefix = f"main_{index}_{cell.OP}"
        if cell.OP == "mbconv":
            keras_prefix = "expanded_conv" if block == 0 else f"expanded_conv_{block}"
            names.update({f"{keras_prefix}_{suffix}": f"{prefix}/{ours}" for ours, suffix in BLOCK_LAYERS.items()
                          if f"{keras_prefix}_{suffix}" in present})
            block += 1
        elif cell.OP == "conv" and block:
            names.update({"conv_1": f"{prefix}/conv", "conv_1_bn": f"{prefix}/bn"})
            break
    return names


def fold_input_scaling(kernel: np.ndarray, moving_mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first conv's kernel and BN moving mean for mobileseg's normalised input instead of ``x / 127.5 - 1``.

    Example:
        >>> kernel = np.random.default_rng(0).normal(size=(3, 3, 3, 4)).astype("float32")
        >>> folded, mean = fold_input_scaling(kernel, np.zeros(4, "float32"))
        >>> pixel = np.array([200.0, 30.0, 90.0])  # one pixel, the same under every tap
        >>> theirs = np.einsum("hwco,c->o", kernel, pixel / 127.5 - 1)
        >>> ours = np.einsum("hwco,c->o", folded, (pixel - MEAN_RGB) / STD_RGB) - mean
        >>> bool(np.allclose(theirs, ours, atol=1e-4))
        True
    """
    mean, std = np.asarray(MEAN_RGB, np.float64), np.asarray(STD_RGB, np.float64)
    folded = kernel * (2.0 * std / 255.0)[None, None, :, None]
    offset = np.einsum("hwco,c->o", kernel.astype(np.float64), 2.0 * mean / 255.0 - 1.0)
    return folded.astype(kernel.dtype), (moving_mean - offset).astype(moving_mean.dtype)


def imagenet_weights(path: Path, genotype) -> tuple[dict[str, np.ndarray], list[str]]:
    """The application's weights under the genotype's names, the first conv folded; and a note.

    Raises:
        InitError: the file is not a MobileNetV3 weights file, or the genotype not a MobileNetV3 backbone.
    """
    application = load_application(path)
    names = layer_names(genotype, application)
    source = {}
    for variable in application.weights:
        layer, rest = variable.path.rsplit("/", 1)
        key = f"{names[layer]}/{rest}" if layer in names else variable.path
        source[key] = keras.ops.convert_to_numpy(variable)
    notes = [f"{application.name} ({sum(1 for n in names if n.endswith('_project'))} blocks mapped to main's cells)"]
    kernel, mean = "main_0_conv/conv/kernel", "main_0_conv/bn/moving_mean"
    scaled = any(isinstance(layer, keras.layers.Rescaling) for layer in application.layers)
    if scaled and kernel in source and mean in source:
        source[kernel], source[mean] = fold_input_scaling(source[kernel], source[mean])
        notes.append("its [-1, 1] input scaling folded into main_0_conv (kernel and BN moving mean)")
    return source, notes
