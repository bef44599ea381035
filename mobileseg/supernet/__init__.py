"""The weight-sharing supernet of a search space, its training, and subnet accuracy.

- `plan`: what a space needs as one supernet (positions, shared layers, the arch vector);
- `slots`: the plan's records (cell, branch and reference slots, groups, head) and the grouping rule;
- `elastic`: forward passes that run a widest block as any narrower variant;
- `model`: `Supernet`, one Keras model for every network of the space, and `extract`;
- `extremes`: the space's largest and smallest networks (the sandwich rule's two ends);
- `extract`: copying the shared weights into a standalone network;
- `trainer`: sandwich-rule training with in-place distillation, into ``RUN/supernet/``
  (its settings: `train_config`);
- `accuracy`: `SupernetAccuracyModel`, the search's ``AccuracyModel.miou(genotypes)``.

What the search CLI calls (the search itself only sees ``miou``, docs/architecture.md, sections 3 and 4)::

    supernet = Supernet.from_file("search_space/default.yaml", num_classes, (180, 240))
    SupernetTrainer(supernet, SupernetTrainConfig(epochs=..., search_scale=0.5)).fit(source, run_dir, rng)
    accuracy = SupernetAccuracyModel(supernet, source, source, calib_batches=16, scale_range=(0.25, 1.0))
    accuracy.miou(genotypes)  # -> list of floats in [0, 1]
"""

from mobileseg.supernet.accuracy import SupernetAccuracyModel
from mobileseg.supernet.model import Supernet
from mobileseg.supernet.plan import SupernetError, SupernetPlan
from mobileseg.supernet.train_config import SupernetTrainConfig
from mobileseg.supernet.trainer import SupernetTrainer, load_supernet_weights

__all__ = ["Supernet", "SupernetAccuracyModel", "SupernetError", "SupernetPlan", "SupernetTrainConfig",
           "SupernetTrainer", "load_supernet_weights"]
