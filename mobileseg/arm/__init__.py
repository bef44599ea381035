"""ARM without a phone: shipped ``.tflite`` files run through LiteRT's aarch64 build under qemu-user.

`root` finds the arm64 Debian root (``make arm_root``) and builds the emulated python's command line;
`runner` (run by `python -m mobileseg.arm`) is what that python runs (one file on given images:
outputs and the XNNPACK partition
count), and the same code runs on this CPU; `parity` compares the two runs; `divergence` finds the
operator whose kernel computes differently on the two.
"""
