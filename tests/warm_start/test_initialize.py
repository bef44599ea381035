"""``--init`` values: their kinds, the errors for bad ones, and the report file."""

import json

import h5py
import numpy as np
import pytest

from mobileseg.arch import builder, schema_io
from mobileseg.warm_start.initialize import REPORT, initialize, parse_init, write_report
from mobileseg.warm_start.matching import InitError, copy_matching
from tests.warm_start.test_sources import ARCH


def test_the_kinds(tmp_path):
    for name in ("a.keras", "b.weights.h5", "c.h5"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "run" / "supernet").mkdir(parents=True)
    for name in ("state.json", "checkpoint.npz"):
        (tmp_path / "run" / "supernet" / name).write_bytes(b"")
    kinds = {text: parse_init(text).kind for text in (str(tmp_path / "a.keras"), str(tmp_path / "b.weights.h5"),
                                                       f"imagenet:{tmp_path / 'c.h5'}", f"supernet:{tmp_path / 'run'}")}
    assert list(kinds.values()) == ["keras", "weights_h5", "imagenet", "supernet"]
    assert parse_init(f"supernet:{tmp_path / 'run'}").path == tmp_path / "run"


def test_the_report_file(tmp_path):
    model = builder.build_model(schema_io.loads(ARCH), 5, (32, 32))
    report = copy_matching(model, {model.weights[0].path: np.zeros(model.weights[0].shape, "float32")}, "x.keras")
    path = write_report(tmp_path / "new_run", report)
    assert path == tmp_path / "new_run" / REPORT
    assert json.loads(path.read_text())["matched"] == [model.weights[0].path]


def test_bad_init_values_are_named(tmp_path):
    genotype = schema_io.loads(ARCH)
    model = builder.build_model(genotype, 5, (32, 32))
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    (tmp_path / "broken.weights.h5").write_bytes(b"not hdf5")
    with h5py.File(tmp_path / "legacy.weights.h5", "w") as file:
        file.attrs["layer_names"] = [b"conv"]
    (tmp_path / "damaged" / "supernet").mkdir(parents=True)
    (tmp_path / "damaged" / "supernet" / "state.json").write_text('{"epoch": 3, "epo')
    (tmp_path / "damaged" / "supernet" / "checkpoint.npz").write_bytes(b"")
    cases = [
        ("notes.txt", "notes.txt: expected FILE.keras or FILE.weights.h5"),
        ("missing.keras", "missing.keras: no such file"),
        ("broken.keras", "broken.keras: not a .keras model file"),
        ("broken.weights.h5", "broken.weights.h5: not an HDF5 weights file"),
        ("legacy.weights.h5", "legacy.weights.h5: not a Keras .weights.h5 file"),
        (f"supernet:{tmp_path}", "holds no trained supernet"),
        (f"supernet:{tmp_path / 'damaged'}", "state.json: damaged, not JSON"),
    ]
    for value, message in cases:
        text = value if value.startswith("supernet:") else str(tmp_path / value)
        with pytest.raises(InitError, match=message.replace(".", r"\.")):
            initialize(model, parse_init(text), genotype)
