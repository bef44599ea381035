"""The weight-sharing supernet: one Keras model that runs every network of a search space.

Built from the space tree (`mobileseg.supernet.plan`): for every cell position, one
mobileseg block per *group* of alternatives (same op and structure), built at the
group's widest variant with ``cell_layer``; one head built for every head input at the
widest head width. The architecture is a model *input*: an int32 vector (`encode`)
saying, per position, which group runs and the active widths, kernel, hidden widths,
which candidate a fork point or context takes, and which head inputs are present. So
one traced graph (one ``tf.function`` trace) serves every sampled network:

- op choice: ``keras.ops.switch`` (TF ``switch_case``: only the chosen branch runs) over
  the position's groups, each zero-padding its output to the position's widest width;
- widths, kernels, expansion and FFN ratios: masks inside each block
  (`mobileseg.supernet.elastic`): a narrow variant uses the first channels (the kernel
  centre) of the shared weights;
- fork points, contexts and head inputs with a choice of cell: ``switch`` over the
  candidate tensors (same stride, checked by the plan);
- dropped branches: their cells switch to a zeros branch (nothing runs) and the head
  skips their inputs (``cond``), exactly as the builder prunes them.

`Supernet.extract` builds the standalone `build_model` network of a genotype and copies
the shared weights in (first channels), and its output equals the supernet's for that
genotype: the weight sharing is real, and "train from inherited weights" is possible.

Cost: a network runs only its own layers (one branch per switch), but each at its group's
widest channel counts, masked; so a narrow network costs about what its widest variant
costs. Tracing the graph once takes long for a large space (the default space: about 4
minutes for the training step on this 2-core machine), after which no network retraces.

Example:
    >>> import numpy as np
    >>> from mobileseg.arch.space import SearchSpace
    >>> space = SearchSpace.from_text('''
    ... name: tiny
    ... branches:
    ...   - name: main
    ...     source: null
    ...     cells:
    ...       - {op: conv, width: 8, stride: 2}
    ...       - {op: mbconv, width: {choice: [8, 16]}, stride: 2}
    ...       - choice: [{op: mbconv, width: 16, kernel: {choice: [3, 5]}}, {op: skip}]
    ... head: {op: light, inputs: [{branch: main}], width: 16}
    ... ''')
    >>> supernet = Supernet(space, num_classes=3, input_size=(16, 16))
    >>> genotype = supernet.largest()
    >>> images = np.random.default_rng(0).uniform(0, 255, (1, 16, 16, 3)).astype("float32")
    >>> logits = supernet((images, supernet.encode(genotype)))
    >>> tuple(logits.shape)
    (1, 4, 4, 3)
    >>> float(np.abs(logits - supernet.extract(genotype)(images)).max()) < 1e-4
    True
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from mobileseg.arch import complexity
from mobileseg.arch.builder import build_model, cell_layer, head_layer
from mobileseg.arch.genotype import Genotype, Head
from mobileseg.arch.schema_io import GenotypeError
from mobileseg.arch.space import Decisions, SearchSpace
from mobileseg.blocks.elastic import fit_channels
from mobileseg.data.normalization import MEAN_RGB, STD_RGB
from mobileseg.supernet import elastic
from mobileseg.supernet.extremes import extreme_genotype
from mobileseg.supernet.plan import SupernetPlan
from mobileseg.supernet.slots import CellSlot, RefSlot



@keras.saving.register_keras_serializable(package="mobileseg")
class Supernet(keras.Model):
    """All networks of a search space in one model with shared weights.

    Papers: Cai, Gan, Wang, Zhang, Han, "Once-for-All: Train One Network and Specialize it
    for Efficient Deployment", ICLR 2020 (elastic width and kernel, weights shared by first
    channels and kernel centres); Yu et al., "BigNAS", ECCV 2020 (one-shot training of the
    largest, smallest and random children); Yu et al., "Real-Time Image Segmentation via
    Hybrid Convolutional-Transformer Architecture Search" (HyCTAS), 2024 (the multi-branch
    lattice at 1/8, 1/16, 1/32 with convolution and attention cells).

    Args:
        space: the search space (`SearchSpace`).
        num_classes: output channels of the logits.
        input_size: (height, width) of the images; fixed (attention blocks need static sizes),
            e.g. the search resolution (half the training size).
        name: model name.

    Call:
        ``supernet((images, arch), training=False, bn_momentum=None, gates=None)``: images (B, H,
        W, 3) in [0, 255]; arch the int32 vector of `encode`. Returns logits (B, h, w, num_classes)
        at the resolution of the head's first input, like `build_model`'s. ``gates``: None, or a
        float32 vector of ``len(plan.slots) + 1`` scalars multiplying each slot's output (in
        ``plan.slots`` order) and the logits (last): the straight-through estimator of the
        differentiable search (`mobileseg.search.differentiable`) passes 1s that carry gradients.

    Raises:
        SupernetError: the space cannot be a supernet (a message naming the choice path).
    """

    def __init__(self, space: SearchSpace, num_classes: int, input_size: tuple[int, int],
                 name: str = "supernet", **kwargs):
        super().__init__(name=name, **kwargs)
        self.space = space
        self.num_classes = int(num_classes)
        self.input_size = tuple(int(v) for v in input_size)
        self.plan = SupernetPlan(space, self.input_size)
        self.normalize = keras.layers.Normalization(mean=MEAN_RGB, variance=np.square(STD_RGB), name="normalize")
        self.normalize.build((None, *self.input_size, 3))
        self.cell_layers = []
        self._slot_layers: dict[str, list] = {}
        for slot in self.plan.slots:
            layers = []
            for index, group in enumerate(slot.groups):
                layer = cell_layer(group.wide, slot.in_max, f"{slot.name}_g{index}_{group.wide.OP}")
                x_shape = (None, *self._in_size(slot), slot.in_max)
                if slot.context is not None and group.wide.context_ref() is not None:
                    context_size = self.plan.slot(*slot.context.candidates[0]).size
                    layer.build([x_shape, (None, *context_size, slot.context_max)])
                else:
                    layer.build(x_shape)
                layers.append(layer)
            self._slot_layers[slot.name] = layers
            self.cell_layers.extend(layers)
        self.head_layer = self._build_head()
        self.built = True
        self._largest = self._smallest = None
        self._costs: dict[str, list[tuple[int, int]]] = {}

    @classmethod
    def from_file(cls, space_path, num_classes: int, input_size: tuple[int, int], **kwargs) -> "Supernet":
        """The supernet of the space in a YAML/JSON file (`SearchSpace.load`)."""
        return cls(SearchSpace.load(space_path), num_classes, input_size, **kwargs)

    def get_config(self):
        return {"space": self.space.tree, "space_source": self.space.source, "num_classes": self.num_classes,
                "input_size": list(self.input_size), "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        space = SearchSpace(config.pop("space"), config.pop("space_source"))
        return cls(space, **config)

    # -- building -------------------------------------------------------------------------------
    def _in_size(self, slot: CellSlot) -> tuple[int, int]:
        if slot.index > 0:
            return self.plan.slot(slot.branch, slot.index - 1).size
        if slot.source is None:
            return self.input_size
        return self.plan.slot(*slot.source.candidates[0]).size

    def _ref_width(self, ref: RefSlot) -> int:
        return max(self.plan.slot(*c).out_max for c in ref.candidates)

    def _build_head(self):
        head = self.plan.head
        genotype_head = Genotype(name="head", branches=(), head=Head(op=head.op, inputs=(), width=head.width_max))
        layer = head_layer(genotype_head, self.num_classes)
        shapes = [(None, *self.plan.slot(*ref.candidates[0]).size, self._ref_width(ref)) for ref in head.inputs]
        layer.build(shapes if len(shapes) > 1 else shapes[0])
        return layer

    # -- architectures ----------------------------------------------------------------------------
    @property
    def arch_size(self) -> int:
        """Length of the arch vector."""
        return len(self.plan.layout)

    def encode(self, genotype: Genotype) -> np.ndarray:
        """The int32 arch vector that runs ``genotype`` (see `SupernetPlan.encode`).

        Raises:
            GenotypeError: the genotype is not in the space (or cannot be built).
        """
        return self.plan.encode(genotype)

    def decisions_to_tensor(self, decisions: Decisions):
        """The arch vector (an int32 tensor) of the network that ``decisions`` select in the space."""
        return ops.convert_to_tensor(self.encode(self.space.materialize(decisions)), "int32")

    def seed_states(self) -> list:
        """The supernet's state outside its weights: the ``SeedGenerator`` states of its dropout
        layers (in ``variables``, not in ``weights``), which an exact resume must restore too."""
        weights = {id(v) for v in self.weights}
        return [v for v in self.variables if id(v) not in weights]

    def sample(self, rng: np.random.Generator) -> Genotype:
        """A uniformly sampled network of the space (`SearchSpace.sample`: validated, so buildable)."""
        return self.space.sample(rng)

    def largest(self) -> Genotype:
        """The largest network (the sandwich rule's top and the distillation teacher).

        Rule: every optional branch present; at every position the group (op and structure)
        whose shared layer does the most multiply-accumulates at that position (counted at the
        supernet's input size like `mobileseg.arch.complexity`; parameters break ties), never
        ``skip`` unless it is the only alternative, and within it the largest width, kernel, expansion and FFN ratio;
        forks and contexts take their first candidate (they do not change the size); the
        widest head that the builder accepts. Ties go to the first alternative.
        """
        if self._largest is None:
            self._largest = extreme_genotype(self.plan, self._group_costs, largest=True)
        return self._largest

    def smallest(self) -> Genotype:
        """The smallest network: optional branches dropped, ``skip`` wherever the space allows
        it, else the group with the fewest parameters at its narrowest values; the narrowest
        head the builder accepts. When the light head is left with a single input, which the
        builder connects without a projection, the cell that sets that input's width takes
        the head's width (the narrowest head width that some alternative there has)."""
        if self._smallest is None:
            self._smallest = extreme_genotype(self.plan, self._group_costs, largest=False)
        return self._smallest

    def _group_costs(self, slot: CellSlot) -> list[tuple[int, int]]:
        """(MACs, params) of each group's shared layer at the slot's widest input, cached.

        MACs are counted on the layer's traced graph for one image, as `mobileseg.arch.complexity`
        counts them (convolutions, dense layers, matrix products).
        """
        if slot.name not in self._costs:
            costs = []
            for index, layer in enumerate(self._slot_layers[slot.name]):
                specs = [tf.TensorSpec((1, *self._in_size(slot), slot.in_max))]
                if slot.context is not None and slot.groups[index].wide.context_ref() is not None:
                    context_size = self.plan.slot(*slot.context.candidates[0]).size
                    specs.append(tf.TensorSpec((1, *context_size, slot.context_max)))
                function = tf.function(lambda *x, layer=layer: layer(list(x) if len(x) > 1 else x[0], training=False))
                graph = function.get_concrete_function(*specs).graph
                macs = sum(complexity._op_macs(op) for op in graph.get_operations())
                costs.append((macs, layer.count_params()))
            self._costs[slot.name] = costs
        return self._costs[slot.name]

    # -- running -------------------------------------------------------------------------------
    def call(self, inputs, training=False, bn_momentum=None, gates=None):
        images, arch = inputs
        arch = ops.cast(arch, "int32")
        x0 = self.normalize(images)
        features: dict[tuple[str, int], object] = {}
        plan = self.plan

        def field(slot: CellSlot, index: int):
            return arch[slot.offset + index]

        for position, slot in enumerate(plan.slots):
            if slot.index > 0:
                x = features[(slot.branch, slot.index - 1)]
            elif slot.source is None:
                x = x0
            else:
                x = self._select(slot.source, field(slot, 9), features)
            context = self._select(slot.context, field(slot, 7), features) if slot.context is not None else None
            args = elastic.CellArgs(in_width=field(slot, 1), out_width=field(slot, 2), kernel=field(slot, 3),
                                    hidden=field(slot, 4), se=field(slot, 5), residual=field(slot, 6),
                                    context_width=field(slot, 8))
            branches = [functools.partial(self._run_group, slot, index, args, training, bn_momentum)
                        for index in range(len(slot.groups))]
            if slot.optional:
                branches.append(functools.partial(self._absent, slot))
            if len(branches) == 1:
                output = branches[0](x, context)
            else:
                output = ops.switch(field(slot, 0), branches, x, context)
            features[(slot.branch, slot.index)] = output if gates is None else output * ops.cast(gates[position],
                                                                                                  output.dtype)

        head = plan.head
        at = head.offset
        inputs_ = []
        present = []
        for i, ref in enumerate(head.inputs):
            inputs_.append(self._select(ref, arch[at + 3 + 2 * i], features))
            present.append(arch[at + 2 + 2 * i] if head.input_optional[i] else None)
        single = arch[at + 1] if head.can_be_single else None
        logits = elastic.run_head(head.op, self.head_layer, inputs_, present, single, arch[at], training, bn_momentum)
        return logits if gates is None else logits * ops.cast(gates[len(plan.slots)], logits.dtype)

    def _run_group(self, slot: CellSlot, index: int, args, training, momentum, x, context):
        group = slot.groups[index]
        layer = self._slot_layers[slot.name][index]
        if context is not None and group.wide.context_ref() is None:
            context = None
        kernels = {v["kernel"] for v in group.variants if "kernel" in v}
        y = elastic.run_cell(group.wide.OP, layer, x, context, args, training, momentum,
                             kernel_elastic=group.kernel_elastic and len(kernels) > 1)
        return fit_channels(y, slot.out_max)

    def _absent(self, slot: CellSlot, x, context):
        return ops.zeros((ops.shape(x)[0], *slot.size, slot.out_max), x.dtype)

    def _select(self, ref: RefSlot, index, features):
        width = self._ref_width(ref)
        tensors = [fit_channels(features[c], width) for c in ref.candidates]
        if len(tensors) == 1:
            return tensors[0]
        return ops.switch(index, [functools.partial(lambda t: t, t) for t in tensors])

    # -- standalone subnets ------------------------------------------------------------------------
    def extract(self, genotype: Genotype, name: str | None = None) -> keras.Model:
        """The standalone `build_model` network of ``genotype`` with the supernet's weights copied in.

        Every weight is the first channels (kernels: the centre) of the shared one, BN
        moving statistics included; the model's output equals ``self((images,
        self.encode(genotype)))``.

        Raises:
            GenotypeError: the genotype is not in the space.
        """
        from mobileseg.supernet.extract import copy_into

        self.encode(genotype)
        model = build_model(genotype, self.num_classes, self.input_size, name=name)
        copy_into(self, genotype, model)
        return model
