"""What makes two variants of a supernet slot share one layer."""

from mobileseg.arch.ops.convolutions import MBConv
from mobileseg.supernet.slots import structure_key


def test_structure_key_ignores_elastic_fields_only():
    a, b = MBConv(width=8, kernel=3, expansion=2.0), MBConv(width=16, kernel=5, expansion=4.0)
    assert structure_key(a, 8) == structure_key(b, 8)
    assert structure_key(a, 8) != structure_key(MBConv(width=8, kernel=3, se=True), 8)
