import subprocess
import sys
import time
from pathlib import Path

import pytest

from mobileseg.arch import schema_io
from mobileseg.arch.schema_io import GenotypeError
from tests.arch.test_genotype import two_branch

VALID = """
name: net
branches:
  - name: main
    source: null
    cells:
      - {op: conv, width: 8, stride: 2}
      - {op: mbconv, width: 16, kernel: 5, stride: 2, expansion: 3}
      - {op: efficient_attention, heads: 2, sr_ratio: 2}
      - {op: fuse, context: {branch: low, cell: -1}, width: 16, mode: sum}
  - name: low
    source: {branch: main, cell: 1}
    cells:
      - {op: mbconv, width: 32, stride: 2}
      - {op: sea_attention, heads: 2, key_dim: 8}
head: {op: light, inputs: [{branch: main}], width: 16}
"""


def test_yaml_and_json_round_trip(tmp_path):
    g = schema_io.loads(VALID)
    for suffix in ("yaml", "json"):
        path = tmp_path / f"net.{suffix}"
        schema_io.dump(g, path)
        assert schema_io.load(path) == g
    assert schema_io.loads(schema_io.dumps(two_branch())) == two_branch()


def test_int_is_accepted_where_a_float_is_expected():
    g = schema_io.loads(VALID)
    assert g.branches[0].cells[1].expansion == 3.0


@pytest.mark.parametrize("old, new, message", [
    ("op: mbconv, width: 16", "op: mbconvv, width: 16",
     "branches[0].cells[1].op: unknown op 'mbconvv'"),
    ("kernel: 5", "kernel: 4", "branches[0].cells[1].kernel: 4 is not allowed; expected one of 1, 3, 5, 7"),
    ("kernel: 5", "kernal: 5", "branches[0].cells[1]: unknown key 'kernal'"),
    ("{op: conv, width: 8, stride: 2}", "{op: conv, stride: 2}", "branches[0].cells[0].width: missing key"),
    ("sr_ratio: 2", "sr_ratio: 2.5", "branches[0].cells[2].sr_ratio: expected an integer, got 2.5"),
    ("heads: 2, sr_ratio", "heads: 3, sr_ratio", "branches[0].cells[2].heads: 3 heads do not divide the input width 16"),
    ("{branch: low, cell: -1}", "{branch: lo, cell: -1}", "branches[0].cells[3].context.branch: unknown branch 'lo'"),
    ("source: {branch: main, cell: 1}", "source: {branch: main, cell: 9}",
     "branches[1].source.cell: branch 'main' has 4 cells; cell 9 does not exist"),
    ("source: {branch: main, cell: 1}", "source: {branch: main, cell: 3}", "cycle"),
    ("source: {branch: main, cell: 1}", "source: null", "branches[1].source: the first branch starts from the image"),
    ("name: low", "name: main", "branches[1].name: duplicate branch name 'main'"),
    ("head: {op: light", "head: {op: heavy", "head.op: 'heavy' is not allowed"),
    ("name: net", "name: net\nschema_version: 7", "schema_version: unsupported version 7"),
    ("name: net", "name: net\ncolour: red", "unknown key 'colour'"),
    ("inputs: [{branch: main}], width: 16", "inputs: [{branch: main}], width: 24",
     "head.width: a light head with one input keeps its width: the input has 16 channels, the head says 24"),
])
def test_malformed_genotypes_name_the_key_path(old, new, message):
    assert old in VALID
    with pytest.raises(GenotypeError) as error:
        schema_io.loads(VALID.replace(old, new, 1), source="net.yaml")
    assert str(error.value).startswith("net.yaml: ")
    assert message in str(error.value)


def test_token_merging_needs_mode_and_ratio():
    with pytest.raises(GenotypeError, match="tome_ratio"):
        schema_io.loads(VALID.replace("sr_ratio: 2", "sr_ratio: 2, tome_ratio: 0.5"))
    g = schema_io.loads(VALID.replace("sr_ratio: 2", "sr_ratio: 2, tome_ratio: 0.5, tome_mode: kv_bsm"))
    assert g.branches[0].cells[2].tome_mode == "kv_bsm"


def test_missing_file_and_bad_yaml_are_named(tmp_path):
    with pytest.raises(GenotypeError, match="nowhere.yaml: cannot read"):
        schema_io.load(tmp_path / "nowhere.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(GenotypeError, match="bad.yaml: not valid YAML"):
        schema_io.load(bad)


def test_dump_is_atomic_and_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "arch.yaml"
    schema_io.dump(two_branch(), path)
    before = path.read_text()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", explode)
    with pytest.raises(OSError):
        schema_io.dump(schema_io.loads(VALID), path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["arch.yaml"]


def test_summary_cli_exits_2_on_a_malformed_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(VALID.replace("kernel: 5", "kernel: 4"))
    result = subprocess.run([sys.executable, "-m", "mobileseg.summary", str(bad), "--num_classes", "3",
                             "--input_size", "32x32"], capture_output=True, text=True)
    assert result.returncode == 2
    assert f"{bad}: branches[0].cells[1].kernel: 4 is not allowed" in result.stderr


def test_a_genotype_file_that_is_not_utf8_names_the_file_and_line(tmp_path):
    path = tmp_path / "arch.yaml"
    path.write_bytes(VALID.replace("name: net", "name: r\xe9seau").encode("latin-1"))
    with pytest.raises(GenotypeError, match=r"arch\.yaml: not UTF-8 text \(byte 0xe9 on line 2\); save it as UTF-8"):
        schema_io.load(path)


def _bomb(levels: int) -> str:
    """A flow list whose last item is 10**levels eights once its aliases are expanded."""
    names = "abcdefghij"[:levels]
    items = ["&a [" + ", ".join(["8"] * 10) + "]"]
    items += [f"&{name} [{', '.join([f'*{before}'] * 10)}]" for before, name in zip(names, names[1:])]
    return "[" + ", ".join(items) + "]"


CONV = "      - {op: conv, width: 8, stride: 2}\n"


def test_hostile_genotypes_are_refused_before_anything_is_built_and_messages_stay_short(tmp_path):
    started = time.perf_counter()
    huge_name = tmp_path / "huge_name.yaml"
    huge_name.write_text(VALID.replace("name: net", "name: " + "n" * 10_000_000, 1))
    with pytest.raises(GenotypeError, match=r"huge_name\.yaml: \d+ bytes, more than the 1048576 a file"):
        schema_io.load(huge_name)
    with pytest.raises(GenotypeError, match=r"^net\.yaml: name: a string of 5000 characters; at most 1000"):
        schema_io.loads(VALID.replace("name: net", "name: " + "n" * 5000, 1), "net.yaml")
    many = ("name: many\nbranches:\n  - {name: main, source: null, cells: [&c {op: conv, width: 8, stride: 2}"
            + ", *c" * 200_000 + "]}\nhead: {op: light, inputs: [{branch: main}], width: 8}\n")  # 800 kB
    with pytest.raises(GenotypeError, match=r"^cells\.yaml: more than 100000 values once its aliases"):
        schema_io.loads(many, "cells.yaml")
    with pytest.raises(GenotypeError, match=r"^cells\.yaml: branches: 1005 cells in all; a network has at most 1000"):
        schema_io.loads(VALID.replace(CONV, CONV * 1000, 1), "cells.yaml")
    with pytest.raises(GenotypeError, match=r"^bomb\.yaml: more than 100000 values once its aliases"):
        schema_io.loads(VALID.replace("width: 8,", f"width: {_bomb(9)},", 1), "bomb.yaml")
    assert time.perf_counter() - started < 10.0


def test_a_bad_value_is_cut_short_in_the_message():
    with pytest.raises(GenotypeError) as error:  # 11 110 values: within the limits, but not a width
        schema_io.loads(VALID.replace("width: 8,", f"width: {_bomb(4)},", 1), "net.yaml")
    message = str(error.value)
    assert message.startswith("net.yaml: branches[0].cells[0].width: expected an integer, got [[8, 8,")
    assert len(message) < 300


BOUNDED = VALID.replace("head: {", """      - {op: mbconv, width: 32, expansion: 2, expanded: 48}
      - {op: efficient_attention, heads: 2, mlp_ratio: 2}
      - {op: gfa_attention, heads: 2, units: 64}
      - {op: mhsa, heads: 2, key_dim: 8}
      - {op: sea_attention, heads: 2, key_dim: 8, attn_ratio: 2, mlp_ratio: 2}
      - {op: cross_attention, context: {branch: main, cell: 1}, context_size: 12}
head: {""", 1)


@pytest.mark.parametrize("old, new, message", [
    ("{op: conv, width: 8,", "{op: conv, width: 1000000000000,",
     "branches[0].cells[0].width: 1000000000000 is above the limit: width is at most 4096"),
    ("kernel: 5", "kernel: 1000000000", "branches[0].cells[1].kernel: 1000000000 is not allowed; expected one of"),
    ("heads: 2, sr_ratio: 2", "heads: 1000000000, sr_ratio: 2",
     "branches[0].cells[2].heads: 1000000000 is above the limit: heads is at most 64"),
    ("sr_ratio: 2", "sr_ratio: 1000000", "branches[0].cells[2].sr_ratio: 1000000 is not allowed; expected one of"),
    ("expansion: 3", "expansion: 1.0e+9", "branches[0].cells[1].expansion: 1000000000.0 is above the limit: "
                                          "expansion is at most 16.0"),
    ("expansion: 3", "expansion: .inf", "branches[0].cells[1].expansion: expected a finite number, got inf"),
    ("expansion: 3", "expansion: .nan", "branches[0].cells[1].expansion: expected a finite number, got nan"),
    ("expanded: 48", "expanded: 100000000", "branches[1].cells[2].expanded: 100000000 is above the limit: "
                                            "expanded is at most 16384"),
    ("expanded: 48", "expanded: -5", "branches[1].cells[2].expanded: -5 is below the limit: expanded is at least 0"),
    ("heads: 2, mlp_ratio: 2}", "heads: 2, mlp_ratio: 1000}",
     "branches[1].cells[3].mlp_ratio: 1000.0 is above the limit: mlp_ratio is at most 16.0"),
    ("units: 64", "units: 10000000", "branches[1].cells[4].units: 10000000 is above the limit: units is at most 4096"),
    ("{op: mhsa, heads: 2, key_dim: 8}", "{op: mhsa, heads: 2, key_dim: 100000}",
     "branches[1].cells[5].key_dim: 100000 is above the limit: key_dim is at most 4096"),
    ("attn_ratio: 2", "attn_ratio: 1000", "branches[1].cells[6].attn_ratio: 1000 is above the limit: "
                                          "attn_ratio is at most 16"),
    ("context_size: 12", "context_size: 100000", "branches[1].cells[7].context_size: 100000 is above the limit: "
                                                 "context_size is at most 256"),
    ("{branch: main, cell: 1}, context_size", "{branch: main, cell: -1000000000000}, context_size",
     "branches[1].cells[7].context.cell: -1000000000000 is below the limit: cell is at least -1000"),
    ("inputs: [{branch: main}], width: 16", "inputs: [{branch: main}], width: 1000000000000",
     "head.width: 1000000000000 is above the limit: width is at most 4096"),
    ("inputs: [{branch: main}]", "inputs: [{branch: main, cell: 1000000000000}]",
     "head.inputs[0].cell: 1000000000000 is above the limit: cell is at most 1000"),
])
def test_every_number_of_a_cell_or_the_head_has_an_upper_bound(old, new, message):
    assert schema_io.loads(BOUNDED, "net.yaml")  # within the bounds
    assert old in BOUNDED
    with pytest.raises(GenotypeError) as error:
        schema_io.loads(BOUNDED.replace(old, new, 1), source="net.yaml")
    assert str(error.value).startswith(f"net.yaml: {message}")


def test_the_bounds_cover_every_numeric_field_of_the_cells_the_head_and_references():
    import dataclasses
    import typing

    from mobileseg.arch.genotype import Head, Ref
    from mobileseg.arch.ops.registry import CELL_TYPES

    unbounded = []
    for cls in (*CELL_TYPES.values(), Head, Ref):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            numeric = hints[f.name] in (int, float)
            if numeric and "choices" not in f.metadata and f.name not in schema_io.BOUNDS and f.name != "tome_ratio":
                unbounded.append(f"{cls.__name__}.{f.name}")  # tome_ratio: in [0, 1), checked by validate
    assert unbounded == []
    assert schema_io.BOUNDS["width"][1] == schema_io.MAX_WIDTH


def test_the_repository_genotypes_and_spaces_are_within_the_bounds():
    from mobileseg.arch.space import SearchSpace

    root = Path(__file__).resolve().parents[2]
    genotypes = sorted((root / "search_space" / "references").glob("*.yaml"))
    genotypes += sorted((root / "benchmarks" / "results" / "genotypes").rglob("*.yaml"))
    assert len(genotypes) >= 11
    for path in genotypes:
        schema_io.load(path)
    for path in sorted((root / "search_space").glob("*.yaml")):
        SearchSpace.load(path)


def test_a_width_past_the_bound_exits_2_from_the_command(tmp_path):
    bad = tmp_path / "wide.yaml"
    bad.write_text(VALID.replace("{op: conv, width: 8,", "{op: conv, width: 1000000000000,", 1))
    result = subprocess.run([sys.executable, "-m", "mobileseg.train", "--arch", str(bad), "--data",
                             "synthetic:12,size=32x32", "--run_dir", str(tmp_path / "run"), "--input_size", "32x32"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{bad}: branches[0].cells[0].width: 1000000000000 is above the limit: width is at most 4096" in result.stderr
