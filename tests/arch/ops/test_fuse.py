"""The fuse op: the mode picks the layer; the width is elastic."""

from mobileseg.arch.genotype import Ref
from mobileseg.arch.ops.fuse import FUSE_MODES, Fuse
from mobileseg.arch.ops.registry import op_spec


def test_the_mode_picks_the_layer():
    spec = op_spec("fuse")
    layers = {mode: type(spec.layer(Fuse(context=Ref("low"), width=8, mode=mode), 8, "f")).__name__
              for mode in FUSE_MODES}
    assert layers == {"sum": "SumFusion", "gate": "SigmoidGateFusion"}
    assert spec.elastic_fields == ("width",) and spec.family == "fuse"
