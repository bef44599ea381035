"""The fingerprints: equal things, equal hashes; and every hash a run folder, a study, the latency cache
or a phone keeps still has the value the code before `mobileseg.run.fingerprint` gave it."""

import dataclasses
import json
import pathlib

import numpy as np
import pytest

from mobileseg.android.device_benchmark import _content_name
from mobileseg.arch import schema_io
from mobileseg.arch.space import SearchSpace
from mobileseg.latency import cache
from mobileseg.latency.validation import NetworkStore
from mobileseg.run.fingerprint import (arch_sha256, canonical_json, file_digest, genotype_key, genotype_text,
                                       json_digest, text_digest)
from mobileseg.search.testing import DEMO_SPACE

PINNED = schema_io.loads('''
name: pinned
branches:
  - name: main
    source: null
    cells: [{op: conv, width: 8, stride: 2}, {op: conv, width: 16, stride: 2}]
head: {op: light, inputs: [{branch: main, cell: 1}], width: 16}
''')
TREE = {"name": "pinned", "widths": [8, 16], "nested": {"b": 1, "a": [True, None, 0.5]}, "é": "ü",
        "path": pathlib.PurePosixPath("x/y.yaml")}
# Each value below was computed by the code before this module (commit 85323e9) on the same input.


def test_a_genotype_key_ignores_the_name_and_keeps_its_value():
    assert genotype_key(PINNED) == "69829d81bd1b4e9f6427d12a230043b6c05bc8b5"  # objectives.genotype_key
    assert genotype_key(dataclasses.replace(PINNED, name="other")) == genotype_key(PINNED)
    assert genotype_key(PINNED) == text_digest(genotype_text(PINNED), "sha1")  # the validation store's text


def test_the_train_steps_arch_sha256_keeps_its_value_and_sees_the_name():
    assert arch_sha256(PINNED) == "1c14ab78e34887da560b5ebb47c35ade072a4baeb5fb2ba191a40982b4b5702a"  # train.py
    assert arch_sha256(dataclasses.replace(PINNED, name="other")) != arch_sha256(PINNED)


def test_space_digests_keep_their_values():
    # search_plan: config.yaml's search.space_sha256; nsga2: the study's settings.space
    assert json_digest(TREE) == "afe1c1a74a0248f56f0a0acaffe75e564b0231e4dad7195526f313cb8bf580d9"
    assert json_digest(TREE, "sha1") == "ad8273a1e372deeb0d947d292093ad8fcfcc9fe6"


def test_the_read_only_tables_identity_keeps_its_value():
    table = {"device": {"soc": "x"}, "entries": {"b|q=int8": {"median_ms": 1.25}}}
    assert json_digest(table, length=16) == "eb94406ab354fc85"  # search_plan.Plan.latency_identity


def test_the_latency_caches_device_key_keeps_its_value(monkeypatch):
    monkeypatch.setattr(cache, "code_digest", lambda: "0123456789abcdef")
    assert cache.device_id({"cpu": "x", "threads": 4, "runtime_version": "2.21"}) == "3febb620b84f8848"


def test_a_measured_networks_file_name_keeps_its_value(tmp_path):
    key = json.dumps({"genotype": genotype_text(PINNED), "input_size": [64, 80]}, sort_keys=True)
    assert NetworkStore(tmp_path).path(key).name == "network_eb48441de36c4609.json"


def test_file_digests_keep_their_values(tmp_path):
    model = tmp_path / "my model.tflite"
    model.write_bytes(bytes(range(256)) * 5000)  # more than one chunk
    assert _content_name(model) == "my_model-6835966f35.tflite"  # the name a phone keeps the file under
    space = tmp_path / "space.yaml"
    space.write_bytes("name: demo\n# ü\n".encode())
    assert file_digest(space) == "7d6fb8cd3f5d6d9f847f5c92d83c5d8f7b1dace6bf1ba9e695731165dd8d7ac5"  # pipeline
    assert file_digest(model, "sha1") == text_digest(model.read_bytes(), "sha1")


def test_a_shared_studys_worker_seed_keeps_its_value():
    # nsga2: a worker's draws are seeded from its name
    assert int.from_bytes(bytes.fromhex(text_digest("host:/runs/a", length=16)), "little") == 2508137479692332444


def test_canonical_json_is_key_order_free_and_writes_what_json_cannot_hold_as_text():
    assert canonical_json({"b": 1, "a": (2, 3)}) == canonical_json({"a": [2, 3], "b": 1}) == '{"a": [2, 3], "b": 1}'
    assert json.loads(canonical_json({"path": pathlib.PurePosixPath("x/y")})) == {"path": "x/y"}
    assert len(json_digest({}, length=12)) == 12 and json_digest({"a": 1}) != json_digest({"a": 2})
    with pytest.raises(ValueError):
        text_digest("x", "no-such-hash")


@pytest.fixture(scope="module")
def space():
    return SearchSpace.load(DEMO_SPACE)


def test_genotype_key_is_a_content_digest(space):
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(200)]
    keys = {genotype_key(g) for g in samples}
    assert len(keys) == len(set(samples))  # equal networks, equal keys; different ones differ
    g = samples[0]
    rebuilt = schema_io.loads(schema_io.dumps(g))
    assert genotype_key(rebuilt) == genotype_key(g) == genotype_key(dataclasses.replace(g, name="other"))
