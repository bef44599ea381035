"""Grappler settings for the supernet's compiled functions.

Grappler's memory optimizer rewrites a sum of three or more tensors (``AddN``, which
gradients and the arithmetic optimizer produce) into a ``TemporaryVariable`` plus
``AssignAdd`` ops when its static estimate of the graph's peak memory exceeds 80 % of
the device's. A supernet's graph holds every alternative of every position, so the
estimate (which cannot know that only one branch of each ``switch_case`` runs) is far
above the real peak, the rewrite fires, and the temporary variables inside the switched
gradient branches then collide at run time::

    AlreadyExistsError: Resource __per_step_0/gradient_tape/supernet/switch_case_14/...
    /gradients/AddN_2/tmp_var/...TemporaryVariableOp...

(tensorflow/tensorflow#25540 and #23780 report the same collision in loops). It happened
here with the default space at 180x240, batch 4. `supernet_function_options` turns the
memory optimizer off for the functions called inside it; every other Grappler pass stays
on. Grappler optimizes a function once, at its first call, with the options of that
call, so every call of a supernet function goes through this context.

Example:
    >>> import tensorflow as tf
    >>> double = tf.function(lambda x: x + x)
    >>> with supernet_function_options():
    ...     int(double(tf.constant(2)))
    4
"""

from __future__ import annotations

import contextlib
import functools

from tensorflow.core.protobuf import rewriter_config_pb2
from tensorflow.python.eager import context as tf_context


@functools.lru_cache(maxsize=None)
def _options(executor_type):
    config = tf_context.context().config
    config.allow_soft_placement = True  # what TensorFlow's default function options set
    config.graph_options.rewrite_options.memory_optimization = rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
    return tf_context.FunctionCallOptions(executor_type=executor_type, config_proto=config)


@contextlib.contextmanager
def supernet_function_options():
    """Call ``tf.function``s inside with Grappler's memory optimizer off (see the module docstring)."""
    context = tf_context.context()
    saved = context.function_call_options
    context.function_call_options = _options(saved.executor_type)
    try:
        yield
    finally:
        context.function_call_options = saved
