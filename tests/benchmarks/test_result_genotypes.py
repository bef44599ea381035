"""Every network a committed result names can be rebuilt from the repository (issue 23).

Walks ``benchmarks/results/*.json``: every ``arch`` or ``genotype`` value that names a genotype
file must be a path inside the repository (not a run folder, which is not committed), exist,
load, and those kept under ``benchmarks/results/genotypes/`` must build.
"""

import json
from pathlib import Path

import pytest

from mobileseg.arch import schema_io
from mobileseg.arch.builder import build_model
from mobileseg.arch.composition import composition

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
KEYS = ("arch", "genotype")


def named_genotypes(value, where=""):
    """``(where, path)`` for every ``arch``/``genotype`` string naming a ``.yaml`` file (``@HxW`` dropped)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in KEYS and isinstance(item, str) and item.split("@")[0].endswith(".yaml") and " " not in item:
                yield f"{where}/{key}", item.split("@")[0]
            else:
                yield from named_genotypes(item, f"{where}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from named_genotypes(item, f"{where}[{index}]")


NAMED = sorted({(path.name, where, name) for path in RESULTS.glob("*.json")
                for where, name in named_genotypes(json.loads(path.read_text()))})


def test_the_walk_finds_what_results_name():
    found = list(named_genotypes({"rows": [{"arch": "a.yaml@224x224", "x": {"genotype": "b/c.yaml"}},
                                           {"arch": "python x.yaml --y", "genotype": None}]}))
    assert found == [("/rows[0]/arch", "a.yaml"), ("/rows[0]/x/genotype", "b/c.yaml")]
    assert any(name.startswith("benchmarks/results/genotypes/") for _, _, name in NAMED)


@pytest.mark.parametrize("result, where, name", NAMED)
def test_every_named_genotype_is_committed_and_loads(result, where, name):
    path = Path(name)
    assert not path.is_absolute() and path.parts[0] != "runs", f"{result} {where}: {name} is not in the repository"
    assert (REPO / path).is_file(), f"{result} {where}: {name} does not exist"
    schema_io.load(REPO / path)


@pytest.mark.parametrize("path", sorted((RESULTS / "genotypes").rglob("*.yaml")), ids=lambda p: p.stem)
def test_kept_genotypes_build(path):
    genotype = schema_io.load(path)
    model = build_model(genotype, 11, (64, 64))
    assert model.output_shape[-1] == 11 and composition(genotype).startswith(genotype.branches[0].name)


def test_legacy_results_say_their_genotypes_are_lost():
    for path in RESULTS.glob("*.json"):
        text = path.read_text()
        if '"arch_lost"' in text:
            assert "genotypes_lost" in json.loads(text), path.name
