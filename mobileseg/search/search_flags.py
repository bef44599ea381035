"""The flags of ``python -m mobileseg.search`` (the command's docstring says what each does).

`define_flags` declares them on a ``FlagValues`` (the pipeline declares them on its own to check its
search step's command line, `mobileseg.pipeline_budget`); `FLAG_NAMES` is the order ``config.yaml``
lists them in.
"""

from __future__ import annotations

STAGES = ("supernet", "search", "all")
STRATEGIES = ("evolutionary", "differentiable", "random")
RANDOM_SCORES = ("latency", "supernet")
FLAG_NAMES = (
    "space", "data", "run_dir", "input_size", "target_latency_ms", "latency_backend", "serial", "adb", "threads",
    "clock", "stage", "budget", "population", "generations", "seed", "storage", "study_name", "supernet_epochs",
    "steps_per_epoch", "batch_size", "search_scale", "val_images", "calib_batches", "references", "progress",
    "strategy", "random_score", "gcn", "latency_cache", "precision", "time_budget", "time_plan",
)
"""Every flag of the command, in the order config.yaml lists them."""
BUDGET_FLAGS = ("supernet_epochs", "population", "generations", "calib_batches", "references")
SIZE_FLAGS = ("supernet_epochs", "population", "generations")
"""What ``--time_budget`` sizes (unless given)."""


def define_flags(flag_values=None) -> None:
    """Declare the flags (at start-up only, so importing this module declares nothing)."""
    from absl import flags

    from mobileseg.data.sources import DATA_FLAG_HELP
    from mobileseg.search import budget
    from mobileseg.training.train_config import PRECISIONS

    fv = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_string("space", None, "Search space YAML file, e.g. search_space/default.yaml.", flag_values=fv)
    flags.DEFINE_string("data", None, DATA_FLAG_HELP, flag_values=fv)
    flags.DEFINE_string("run_dir", None, "The run folder (created; resumed when it holds a search).", flag_values=fv)
    flags.DEFINE_string("input_size", None, "Search resolution HEIGHTxWIDTH: the supernet's input and the size "
                        "latency is predicted at; a multiple of the space's output stride (default: half the data "
                        "set's image size, rounded to it).", flag_values=fv)
    flags.DEFINE_float("target_latency_ms", None, "Latency target: constrained NSGA-II, and arch.yaml is the best "
                       "network within it.", flag_values=fv)
    flags.DEFINE_string("latency_backend", "local", "local[:FILE] (this CPU, LiteRT; FILE default "
                        "DIR/latency_table.json), adb[:FILE] (a phone, with --serial), or table:FILE (read only).",
                        flag_values=fv)
    flags.DEFINE_string("latency_cache", None, "local, adb: folder of the persistent latency cache, or off "
                        "(default: $MOBILESEG_LATENCY_CACHE, else ~/.cache/mobileseg): blocks this device measured "
                        "before, in any run, are not measured again.", flag_values=fv)
    flags.DEFINE_string("serial", None, "adb: the phone (default: the only one connected).", flag_values=fv)
    flags.DEFINE_string("adb", "adb", "adb: the adb executable.", flag_values=fv)
    flags.DEFINE_integer("threads", 1, "Threads of LiteRT / benchmark_model when timing blocks.", flag_values=fv)
    flags.DEFINE_enum("clock", "wall", ["wall", "thread_cpu"], "local: how blocks are timed: wall (latency as "
                      "seen) or thread_cpu (CPU time of the one LiteRT thread: the idle-core latency on a machine "
                      "others are loading; needs --threads 1).", flag_values=fv)
    flags.DEFINE_enum("stage", "all", list(STAGES), "supernet: train it only; search: latency, search and "
                      "outputs on the supernet in DIR; all: everything. With --strategy differentiable the "
                      "supernet and the search are one stage: every value runs the latency stage (shared), "
                      "then it, then the outputs.", flag_values=fv)
    flags.DEFINE_enum("strategy", "evolutionary", list(STRATEGIES), "evolutionary: train the supernet, then "
                      "NSGA-II over it; differentiable: train the weights and per-cell architecture logits "
                      "together (GAS, FasterSeg's latency loss) for --supernet_epochs epochs, in DIR/differentiable; "
                      "random: population x generations seeded random networks, no accuracy score, arch.yaml the "
                      "slowest within --target_latency_ms (the baseline; see --random_score).", flag_values=fv)
    flags.DEFINE_enum("random_score", "latency", list(RANDOM_SCORES), "random: latency (no accuracy score, the "
                      "slowest network within the target) or supernet (random search with weight sharing: the "
                      "supernet trained as for evolutionary, population x generations random networks within the "
                      "target scored with its proxy mIoU, the best chosen: the baseline at the search's cost).",
                      flag_values=fv)
    flags.DEFINE_boolean("gcn", True, "differentiable: pass each cell's architecture logits through GAS's graph "
                         "convolution over neighbouring cells before the softmax (--nogcn: cells independent).",
                         flag_values=fv)
    flags.DEFINE_enum("budget", "auto", list(budget.CHOICES), "Defaults of the budget flags: demo (minutes), "
                      "default (hours), auto (demo below 100 training images).", flag_values=fv)
    flags.DEFINE_integer("population", None, "Networks per generation (default: the budget's).", flag_values=fv)
    flags.DEFINE_integer("generations", None, "Generations in the study (default: the budget's; raise it to "
                         "search longer).", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seeds the supernet, its training and the search.", flag_values=fv)
    flags.DEFINE_string("storage", None, "Optuna RDB URL of the study (default: sqlite:///DIR/study.db); a "
                        "database server such as postgresql://user:password@host/db for several workers.",
                        flag_values=fv)
    flags.DEFINE_string("study_name", "search", "The study in the storage.", flag_values=fv)
    flags.DEFINE_integer("supernet_epochs", None, "Supernet epochs; with --strategy differentiable the epochs of "
                         "the joint weight and architecture training (default: the budget's).", flag_values=fv)
    flags.DEFINE_integer("steps_per_epoch", None, "At most this many supernet steps per epoch (default: one pass "
                         "over the training images).", flag_values=fv)
    flags.DEFINE_integer("batch_size", 8, "Images per supernet step and per calibration batch.", flag_values=fv)
    flags.DEFINE_enum("precision", "float32", list(PRECISIONS), "Keras dtype policy the supernet trains under "
                      "(mixed_bfloat16: bfloat16 compute, float32 weights and loss; slower on this CPU, see the "
                      "README). Networks are scored in float32 either way.", flag_values=fv)
    flags.DEFINE_float("search_scale", None, "Scales the training images' random rescaling (default: input size "
                       "over the data set's image size).", flag_values=fv)
    flags.DEFINE_integer("val_images", None, "Proxy mIoU on at most this many validation images (default: all).",
                         flag_values=fv)
    flags.DEFINE_integer("calib_batches", None, "Batch-norm recalibration batches per network (default: the "
                         "budget's).", flag_values=fv)
    flags.DEFINE_string("references", None, "Reference networks on the plot: all, none, cheapest:K or "
                        "FILE,FILE (default: the budget's).", flag_values=fv)
    flags.DEFINE_boolean("progress", True, "Show progress bars (block measurement, supernet epochs).",
                         flag_values=fv)
    flags.DEFINE_string("time_budget", None, "Fit the whole search in this time, e.g. 45m, 2h, 1h30m: supernet "
                        "epochs, population and generations are sized to it from a few timed steps (flags given "
                        "win), the plan is printed and written to DIR/plan.json, and a stage that overruns its "
                        "share stops at an epoch or generation boundary.", flag_values=fv)
    flags.DEFINE_boolean("dry_run", False, "Print the plan (stages, sizes, estimated durations; with "
                         "--time_budget, sized to it), write DIR/plan.json, and stop.", flag_values=fv)
    flags.DEFINE_string("time_plan", None, "Keep to the supernet and search deadlines of this plan.json (the "
                        "pipeline passes its own).", flag_values=fv)
