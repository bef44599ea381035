"""Test-wide settings: CPU only, quiet TensorFlow, Keras on the TensorFlow backend, and the
persistent latency cache off (tests of it, and of commands using it, name their own folder)."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ["MOBILESEG_LATENCY_CACHE"] = "off"
