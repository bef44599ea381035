"""Quantization: quantization-aware training written natively for Keras 3, and post-training quantization.

- `fake_quant`: the fake-quantization layers (weights per channel, activations per tensor);
- `folded`: folded convolutions (batch norm folded, ReLU fused) and weight tensors;
- `flatten`: a model's blocks inlined into one flat graph of TFLite-sized ops;
- `qat`: the quantization-aware rewrite (where TFLite keeps int8 tensors) and calibration;
- `finetune`: quantization-aware fine-tuning from a trained float model;
- `ptq`: the representative set of training images for post-training quantization.
"""
