"""A genotype drawn as an inline SVG: one row per branch, one box per cell, the head on the right.

Columns follow the data flow: a branch that forks from cell c of another starts in the column
after c, so cells in one column run at the same depth. Each box names the op, its main
settings and the cell's output stride (1/8 ...). Solid arrows are the main flow (cell to
cell, a fork from its source cell, the head's inputs), dashed ones a cell's second input
(``context`` of ``fuse`` and ``cross_attention``). Cells the head does not depend on (left
out of the exported model) are faded; ``skip`` cells are drawn small and grey.

Example:
    >>> from mobileseg.arch import schema_io
    >>> g = schema_io.loads('''
    ... name: t
    ... branches:
    ...   - {name: main, source: null, cells: [{op: conv, width: 8, stride: 2}, {op: mbconv, width: 16, stride: 2}]}
    ...   - {name: low, source: {branch: main, cell: 0}, cells: [{op: sea_attention, heads: 2, key_dim: 8}]}
    ... head: {op: light, inputs: [{branch: main}, {branch: low}], width: 8}
    ... ''')
    >>> svg = genotype_svg(g)
    >>> svg.startswith("<svg") and svg.count('class="cell ') == 3 and "sea_attention" in svg
    True
"""

from __future__ import annotations

from html import escape

from mobileseg.arch.genotype import Genotype
from mobileseg.arch.ops.registry import op_spec
from mobileseg.latency.blocks import live_cells

BOX_W, BOX_H = 124, 52
"""A cell's box, in SVG units."""
SKIP_W = 40
"""The width of a ``skip`` cell's box, and of a column holding only skips."""
FIT_WIDTH = 1800
"""A drawing up to this wide gets the class ``fit`` (the page scales it to its width); a wider one is
scrolled at full size, so its text stays readable."""
GAP_X, GAP_Y = 36, 34
MARGIN = 16
COLORS = {"conv": "#cfe3f7", "attention": "#fbd9b0", "fuse": "#cdebc8", "skip": "#eeeeee", "head": "#e2d4f0",
          "image": "#ffffff"}
"""Fill colour of each kind of box (see `kind`)."""
SETTINGS = (("width", "w"), ("kernel", "k"), ("stride", "s"), ("expansion", "e"), ("heads", "h"),
            ("key_dim", "d"), ("units", "u"), ("sr_ratio", "sr"), ("mode", ""))
"""Cell settings shown in a box, with their short labels."""


def kind(op: str) -> str:
    """The colour group of an op: its registered family (``conv``, ``attention``, ``fuse``, ``skip``) or ``head``.

    Example:
        >>> kind("mbconv"), kind("mhsa"), kind("skip")
        ('conv', 'attention', 'skip')
    """
    return "head" if op == "head" else op_spec(op).family


def settings_label(cell) -> str:
    """The main settings of a cell, short: ``w16 k3 s2``.

    Example:
        >>> from mobileseg.arch.ops.convolutions import MBConv
        >>> settings_label(MBConv(width=16, kernel=5, stride=2, expansion=4.0))
        'w16 k5 s2 e4'
    """
    parts = []
    for name, short in SETTINGS:
        value = getattr(cell, name, None)
        if value is None or (name == "stride" and value == 1):
            continue
        parts.append(f"{short}{value:g}" if isinstance(value, float) else f"{short}{value}")
    return " ".join(parts)


def columns(genotype: Genotype) -> dict[tuple[str, int], int]:
    """The column of every cell: the image is column 0, and a cell sits right of every cell it reads.

    That is right of the cell before it, of its branch's source cell (a fork) and of its context
    cell (the longest path from the image), so arrows run left to right.

    Example:
        >>> from mobileseg.arch.genotype import Branch, Head, Ref
        >>> from mobileseg.arch.ops.convolutions import Conv
        >>> from mobileseg.arch.ops.fuse import Fuse
        >>> g = Genotype("t", (Branch("a", None, (Conv(width=8), Fuse(context=Ref("b", 1), width=8))),
        ...                    Branch("b", Ref("a", 0), (Conv(width=8), Conv(width=8)))),
        ...              Head("light", (Ref("a"),), 8))
        >>> columns(g)
        {('a', 0): 1, ('a', 1): 4, ('b', 0): 2, ('b', 1): 3}
    """
    placed = {(branch.name, index): 1 for branch in genotype.branches for index in range(len(branch.cells))}
    for _ in range(len(placed) + 1):
        changed = False
        for branch in genotype.branches:
            for index, cell in enumerate(branch.cells):
                reads = [(branch.name, index - 1)] if index else (
                    [genotype.resolve(branch.source)] if branch.source is not None else [])
                if cell.context_ref() is not None:
                    reads.append(genotype.resolve(cell.context_ref()))
                column = max([placed[key] + 1 for key in reads], default=1)
                if column != placed[(branch.name, index)]:
                    placed[(branch.name, index)] = column
                    changed = True
        if not changed:
            break
    return placed


def _box(x: float, y: float, fill: str, lines: list[str], css: str, faded: bool = False, title: str = "",
         width: float = BOX_W) -> str:
    opacity = ' opacity="0.35"' if faded else ""
    bold = ' font-weight="bold" font-size="11"'
    text = "".join(f'<text x="{x + width / 2:.0f}" y="{y + 16 + 15 * i:.0f}" text-anchor="middle"'
                   f'{bold if i == 0 else ""}>{escape(line)}</text>' for i, line in enumerate(lines))
    return (f'<g class="{css}"{opacity}><title>{escape(title)}</title>'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{width}" height="{BOX_H}" rx="6" fill="{fill}" '
            f'stroke="#555"/>{text}</g>')


def _arrow(x1: float, y1: float, x2: float, y2: float, dashed: bool = False) -> str:
    middle = (x1 + x2) / 2
    dash = ' stroke-dasharray="5,4"' if dashed else ""
    return (f'<path d="M{x1:.0f},{y1:.0f} C{middle:.0f},{y1:.0f} {middle:.0f},{y2:.0f} {x2:.0f},{y2:.0f}" '
            f'fill="none" stroke="#444" stroke-width="1.4" marker-end="url(#arrow)"{dash}/>')


def genotype_svg(genotype: Genotype) -> str:
    """The SVG markup (no XML prologue, to be inlined in HTML) of the network's branches, cells and head."""
    column = columns(genotype)
    strides = genotype.cell_strides()
    live = live_cells(genotype)
    rows = {branch.name: row for row, branch in enumerate(genotype.branches)}
    head_column = max(column.values()) + 1
    widths = [SKIP_W] * (head_column + 1)
    widths[0] = widths[head_column] = BOX_W
    for (name, index), col in column.items():
        if genotype.branch(name).cells[index].OP != "skip":
            widths[col] = BOX_W

    def left(col: int) -> float:
        return MARGIN + 70 + sum(widths[:col]) + col * GAP_X

    def box_width(key: tuple[str, int]) -> float:
        return SKIP_W if genotype.branch(key[0]).cells[key[1]].OP == "skip" else BOX_W

    def top(row: float) -> float:
        return MARGIN + row * (BOX_H + GAP_Y)

    def anchor(key: tuple[str, int], side: str) -> tuple[float, float]:
        x = left(column[key]) + (box_width(key) if side == "out" else 0)
        return x, top(rows[key[0]]) + BOX_H / 2

    parts, edges = [], []
    for branch in genotype.branches:
        row = rows[branch.name]
        parts.append(f'<text x="{MARGIN}" y="{top(row) + BOX_H / 2 + 4:.0f}" class="branch">{escape(branch.name)}'
                     "</text>")
        for index, cell in enumerate(branch.cells):
            key = (branch.name, index)
            stride = f"1/{strides[branch.name][index]}"
            lines = ["skip"] if cell.OP == "skip" else [cell.OP, settings_label(cell), stride]
            parts.append(_box(left(column[key]), top(row), COLORS[kind(cell.OP)], lines, f"cell {kind(cell.OP)}",
                              faded=key not in live, title=f"{branch.name}[{index}]: {cell}", width=box_width(key)))
            if index:
                edges.append(_arrow(*anchor((branch.name, index - 1), "out"), *anchor(key, "in")))
            elif branch.source is not None:
                edges.append(_arrow(*anchor(genotype.resolve(branch.source), "out"), *anchor(key, "in")))
            else:
                edges.append(_arrow(left(0) + BOX_W, top(rows[genotype.branches[0].name]) + BOX_H / 2,
                                    *anchor(key, "in")))
            if cell.context_ref() is not None:
                source = anchor(genotype.resolve(cell.context_ref()), "out")
                entry = top(row) if source[1] < top(row) else top(row) + BOX_H  # from above: enter at the top
                edges.append(_arrow(*source, left(column[key]) + box_width(key) / 2, entry, dashed=True))
    parts.append(_box(left(0), top(0), COLORS["image"], ["image", "", "1/1"], "image"))
    head = genotype.head
    head_row = (len(genotype.branches) - 1) / 2
    parts.append(_box(left(head_column), top(head_row), COLORS["head"], [f"head: {head.op}", f"w{head.width}", ""],
                      "head", title=str(head)))
    for ref in head.inputs:
        edges.append(_arrow(*anchor(genotype.resolve(ref), "out"), left(head_column), top(head_row) + BOX_H / 2))
    width = left(head_column) + BOX_W + MARGIN
    height = top(len(genotype.branches)) - GAP_Y + MARGIN + 4
    fit = " fit" if width <= FIT_WIDTH else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="genotype{fit}" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="12" role="img" '
            f'aria-label="{escape(genotype.name)}">'
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker></defs>'
            + "".join(edges) + "".join(parts) + "</svg>")


def legend_html() -> str:
    """A one-line colour key for the drawing.

    Example:
        >>> "attention" in legend_html()
        True
    """
    keys = "".join(f'<span class="key"><span class="swatch" style="background:{COLORS[name]}"></span>{name}</span>'
                   for name in ("conv", "attention", "fuse", "skip", "head"))
    return (f'<p class="legend">{keys} <span class="key">faded: not used by the head (not exported)</span> '
            '<span class="key">dashed arrow: second input (context)</span></p>')
