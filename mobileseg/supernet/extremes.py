"""The largest and the smallest network of a supernet's space: the sandwich rule's two ends.

`extreme_genotype` picks, slot by slot of a `mobileseg.supernet.plan.SupernetPlan`, the group
and variant with the most (fewest) multiply-accumulates, as `mobileseg.supernet.model.Supernet`'s
``largest`` and ``smallest`` document; the costs come from the supernet's shared layers.
"""

from __future__ import annotations

from collections.abc import Callable

from mobileseg.arch import schema_io
from mobileseg.arch.genotype import Genotype
from mobileseg.arch.schema_io import GenotypeError
from mobileseg.arch.space_tree import expand
from mobileseg.supernet.plan import SupernetPlan, in_space
from mobileseg.supernet.slots import CellSlot


def extreme_genotype(plan: SupernetPlan, group_costs: Callable[[CellSlot], list], largest: bool) -> Genotype:
    """The largest (``largest=True``) or smallest network of the plan's space, by the rules of
    `mobileseg.supernet.model.Supernet.largest` and ``smallest``.

    Args:
        plan: the supernet's plan (its space is ``plan.space``).
        group_costs: ``slot -> [(MACs, params)]`` of each group's shared layer
            (`Supernet._group_costs`).
        largest: which end.

    Raises:
        GenotypeError: the network the rule picks is not valid (the message names the space).
    """
    space = plan.space
    present = {b.name for b in plan.branches if largest or not b.optional}
    branches = []
    for branch in plan.branches:
        if branch.name not in present:
            continue
        if branch.source is not None and not {b for b, _ in branch.source.candidates} & present:
            present.discard(branch.name)
            continue
        cells = [_extreme_cell(slot, present, largest, group_costs) for slot in branch.cells]
        source = None
        if branch.source is not None:
            index = next(i for i, (b, _) in enumerate(branch.source.candidates) if b in present)
            source = branch.source.literals[index]
        branches.append({"name": branch.name, "source": source, "cells": cells})
    inputs = [ref.literals[0] for ref in plan.head.inputs if ref.candidates[0][0] in present]
    aux = [expand(a)[0] for a in space.tree["head"].get("aux", [])]
    aux = [a for a in aux if a["branch"] in present]
    last = None
    for width in sorted(plan.head.widths, reverse=largest):
        attempts = [branches]
        if plan.head.op == "light" and len(inputs) == 1:
            attempts.append(_retarget(plan, group_costs, branches, inputs[0], width, present, largest))
        for attempt in attempts:
            if attempt is None:
                continue
            data = {"schema_version": 1,
                    "name": f"{space.tree['name']}_{'largest' if largest else 'smallest'}",
                    "branches": attempt,
                    "head": {"op": plan.head.op, "inputs": inputs, "width": width, "aux": aux}}
            try:
                genotype = schema_io.from_dict(data, space.source)
                in_space(space, genotype)
                return genotype
            except GenotypeError as error:
                last = error
    raise GenotypeError(f"{space.source}: the {'largest' if largest else 'smallest'} network by the "
                        f"supernet's rule is not valid: {last}")


def _retarget(plan: SupernetPlan, group_costs: Callable, branches: list[dict], ref: dict, width: int,
              present: set[str], largest: bool):
    """``branches`` with the cell that sets the width of ``ref`` re-chosen to give ``width``, or None.

    The light head reads a single input without a projection, so that input must have the
    head's width: the nearest cell upstream that sets a width takes, among the slot's
    alternatives with that width, the smallest (largest) by the same rule.
    """
    by_name = {b["name"]: b for b in branches}
    name, index = ref["branch"], ref["cell"] % len(by_name[ref["branch"]]["cells"])
    while "width" not in by_name[name]["cells"][index]:
        if index > 0:
            index -= 1
        elif by_name[name]["source"] is not None:
            source = by_name[name]["source"]
            name = source["branch"]
            index = source["cell"] % len(by_name[name]["cells"])
        else:
            return None
    slot = plan.slot(name, index)
    costs = group_costs(slot)
    options = [(costs[i], v) for i, g in enumerate(slot.groups) for v in g.variants
               if v.get("width") == width and (v.get("context") is None or v["context"]["branch"] in present)]
    if not options:
        return None
    pick = max if largest else min
    _, variant = pick(options, key=lambda o: (*o[0], *(float(o[1].get(k, 0)) for k in
                                                        ("kernel", "expanded", "expansion", "mlp_ratio"))))
    cells = list(by_name[name]["cells"])
    cells[index] = variant
    return [dict(b, cells=cells) if b["name"] == name else b for b in branches]


def _extreme_cell(slot: CellSlot, present: set[str], largest: bool, group_costs: Callable) -> dict:
    def allowed(variant):
        context = variant.get("context")
        return context is None or context["branch"] in present

    groups = [g for g in slot.groups if any(allowed(v) for v in g.variants)]
    skips = [g for g in groups if g.wide.OP == "skip"]
    if not largest and skips:
        chosen = skips[0]
    else:
        candidates = [g for g in groups if g.wide.OP != "skip"] or groups
        pick = max if largest else min
        costs = group_costs(slot)
        chosen = pick(candidates, key=lambda g: costs[slot.groups.index(g)])  # first on ties

    def size(variant):
        return tuple(float(variant.get(k, 0)) for k in ("width", "kernel", "expanded", "expansion", "mlp_ratio"))

    variants = [v for v in chosen.variants if allowed(v)]
    return (max if largest else min)(variants, key=size)
