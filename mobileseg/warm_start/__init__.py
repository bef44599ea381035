"""Weights a network starts from instead of random ones (``python -m mobileseg.train --init``).

- `initialize`: the ``--init`` value parsed (`parse_init`), the weights copied (`initialize`), the report written;
- `matching`: copying weights by name and shape, and the report of what matched (`InitReport`);
- `sources`: another run's ``.keras`` or ``.weights.h5`` file, and a trained supernet's inherited weights;
- `keras_applications`: keras.applications' MobileNetV3 ImageNet weights for the MobileNetV3 references.
"""
