"""A time budget for a run: durations, the split of a budget, the plan, deadlines, ETAs.

``--time_budget 2h`` on ``python -m mobileseg.search`` and ``python -m mobileseg.pipeline``:
`mobileseg.search.cost_probe` times a few steps of every stage on the real data,
`mobileseg.search.time_planner` turns them into the plan, `split` sizes the stages to fit the
budget, `time_plan` prints the plan and writes ``DIR/plan.json`` (with each stage's deadline),
`deadline` tells a stage's loop at its checkpoint boundary whether another epoch or generation
still fits, and `eta` words the remaining time of a progress line. This package imports only the
standard library and `mobileseg.atomic_write`, so the loops of the supernet, the search and
training can use it.
"""
