"""What ``python -m mobileseg.search`` spends when its budget flags are left out.

Two budgets, chosen by ``--budget`` (``auto`` by default: ``demo`` when the data set has
fewer than `DEMO_TRAIN_PAIRS` training images, ``default`` otherwise):

- ``default``: a real search, e.g. on CamVid (367 training images) with the default space:
  100 supernet epochs, NSGA-II over 20 generations of 32 networks, each scored after
  recalibrating batch norm on 16 training batches, and every reference network of
  ``search_space/references/`` placed on the plot. Hours on a 2-core CPU.
- ``demo``: the same flow in minutes on a synthetic data set and the demo space: 30 supernet
  epochs (a demo data set has few images, so an epoch is a few steps), 10 generations of 16
  networks, 4 calibration batches, and the 2 references that cost the fewest block
  measurements (``cheapest:2``: a reference needs every one of its blocks timed once, about
  2 s a block here, and the 11 references have some 140 blocks).

Any budget flag given on the command line overrides its budget's value.

Example:
    >>> choose_budget("auto", train_pairs=44).name, choose_budget("auto", train_pairs=367).name
    ('demo', 'default')
    >>> choose_budget("default", train_pairs=44).supernet_epochs
    100
"""

from __future__ import annotations

import dataclasses

DEMO_TRAIN_PAIRS = 100
"""``--budget auto`` picks ``demo`` below this many training images."""


@dataclasses.dataclass(frozen=True)
class Budget:
    """The defaults of the budget flags.

    Attributes:
        name: ``demo`` or ``default``.
        supernet_epochs: sandwich-rule epochs of the supernet.
        population: networks per NSGA-II generation.
        generations: generations.
        calib_batches: batch-norm recalibration batches per scored network.
        references: which reference networks to place: ``all``, ``none``, ``cheapest:K``.
    """

    name: str
    supernet_epochs: int
    population: int
    generations: int
    calib_batches: int
    references: str


BUDGETS = {
    "demo": Budget("demo", supernet_epochs=30, population=16, generations=10, calib_batches=4,
                   references="cheapest:2"),
    "default": Budget("default", supernet_epochs=100, population=32, generations=20, calib_batches=16,
                      references="all"),
}
CHOICES = ("auto", *BUDGETS)


def choose_budget(name: str, train_pairs: int) -> Budget:
    """The budget ``--budget name`` stands for, for a data set with ``train_pairs`` training images.

    Raises:
        ValueError: an unknown name (the known ones are listed).
    """
    if name == "auto":
        name = "demo" if train_pairs < DEMO_TRAIN_PAIRS else "default"
    if name not in BUDGETS:
        raise ValueError(f"--budget {name}: expected one of {', '.join(CHOICES)}")
    return BUDGETS[name]
