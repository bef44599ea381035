"""Loading a mobileseg ``.keras`` file, float or quantization-aware, with every custom object registered.

A float model needs the block layers (`mobileseg.arch.builder`); the quantization-aware model export saves
(``model_qat.keras``) the quantization layers (`mobileseg.quant.qat`) and the fine-tuning loss
(`mobileseg.quant.finetune`). Every command that reads a ``.keras`` file for inference loads it here, so a
file one command writes another reads. (A packaged model's class-map layer lives in `mobileseg.deploy`, above
this module: the export, which saves such models, imports it before loading.)
"""

from __future__ import annotations

from pathlib import Path


def load_keras_model(path: Path):
    """The model in ``path``, without its training setup (Keras' own errors pass through)."""
    import keras

    import mobileseg.arch.builder  # noqa: F401  registers the blocks
    import mobileseg.quant.finetune  # noqa: F401  registers the loss
    import mobileseg.quant.qat  # noqa: F401  registers the quantization layers

    return keras.saving.load_model(path, compile=False)
