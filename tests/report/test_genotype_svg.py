"""The network drawing: valid SVG, one box per cell, every arrow running left to right, cells the head
does not use faded; for every reference network of the project."""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mobileseg.arch import schema_io
from mobileseg.arch.genotype import Genotype
from mobileseg.latency.blocks import live_cells
from mobileseg.report.genotype_svg import genotype_svg

REFERENCES = sorted((Path(__file__).resolve().parents[2] / "search_space" / "references").glob("*.yaml"))
SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("path", REFERENCES, ids=lambda p: p.stem)
def test_every_reference_network_is_drawn_cell_by_cell_left_to_right(path):
    genotype = schema_io.load(path)
    root = ET.fromstring(genotype_svg(genotype))
    cells = [g for g in root.iter(f"{SVG}g") if g.get("class", "").startswith("cell ")]
    assert len(cells) == sum(len(branch.cells) for branch in genotype.branches)
    contexts = sum(cell.context_ref() is not None for branch in genotype.branches for cell in branch.cells)
    arrows = [p.get("d") for p in root.iter(f"{SVG}path") if p.get("marker-end")]
    assert len(arrows) == len(cells) + len(genotype.head.inputs) + contexts
    for d in arrows:  # "M x1,y1 C ... x2,y2": every input is drawn left of the cell reading it
        x1, x2 = float(re.match(r"M([\d.]+),", d).group(1)), float(d.split()[-1].split(",")[0])
        assert x2 > x1, (path.stem, d)
    faded = [g for g in cells if g.get("opacity")]
    assert len(faded) == len(cells) - len(live_cells(genotype))


def test_cells_the_head_does_not_read_are_faded():
    genotype = schema_io.loads("""
name: dead_branch
branches:
  - {name: main, source: null, cells: [{op: conv, width: 8, stride: 2}, {op: mbconv, width: 16, stride: 2}]}
  - {name: unused, source: {branch: main, cell: 0}, cells: [{op: mhsa, heads: 2, key_dim: 8}]}
head: {op: light, inputs: [{branch: main}], width: 16}
""")
    assert isinstance(genotype, Genotype)
    root = ET.fromstring(genotype_svg(genotype))
    faded = [g.find(f"{SVG}title").text for g in root.iter(f"{SVG}g") if g.get("opacity")]
    assert len(faded) == 1 and faded[0].startswith("unused[0]")
