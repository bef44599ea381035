"""mobileseg: latency-aware search, QAT and int8 export of real-time segmentation networks."""

__version__ = "0.1.0"
