"""The skip op: the identity everywhere, and no block of the latency table."""

import numpy as np

from mobileseg.arch.ops.registry import op_spec
from mobileseg.arch.ops.skip import Skip


def test_skip_is_the_identity_and_no_block():
    spec = op_spec("skip")
    x = np.arange(6, dtype="float32").reshape(1, 1, 2, 3)
    assert np.array_equal(np.asarray(spec.layer(Skip(), 3, "s")(x)), x)
    assert spec.forward(None, x, None, None, False, None, None) is x
    assert not spec.latency_block and spec.family == "skip"
