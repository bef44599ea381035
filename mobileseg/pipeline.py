"""``python -m mobileseg.pipeline --space SPACE.yaml --data KIND:PATH --run_dir DIR --target_latency_ms MS``.

One run from a data set to a benchmarked int8 model, in one run folder (docs/architecture.md,
section 1). The steps are the project's own commands, each run as a subprocess
whose output streams through:

1. ``search``: ``python -m mobileseg.search`` measures the space's blocks, trains the
   weight-sharing supernet, runs NSGA-II under the latency target and writes ``pareto.json``,
   ``pareto.png`` and the chosen ``arch.yaml``, all at the search's input size
   (``--search_input_size``, default half the images' size): the size the model ships at;
2. ``train``: ``python -m mobileseg.train`` trains ``arch.yaml`` into ``model.keras``, saved and
   validated at that size, on crops (``--input_size``, default that size) of images rescaled
   as the supernet's were (both read from the ``search`` section of ``DIR/config.yaml``),
   starting from the weights the network inherits from the supernet (``--init supernet:DIR``);
3. ``export``: ``python -m mobileseg.export --int8 --qat_epochs N`` quantization-aware
   fine-tunes it, writes ``export/model_int8.tflite`` and ``export/report.json`` with the
   float and int8 mIoU on the test split (the val split when there is no test split);
4. ``bench``: ``python -m mobileseg.bench`` times the int8 file with LiteRT on this CPU
   (``bench/local.json``), or on the phone with ``--latency_backend adb`` (``bench/adb.json``).

The search's budget (``--supernet_epochs``, ``--population``, ``--generations``,
``--references``) defaults to its ``--budget auto``: minutes for fewer than 100 training
images, hours above.

``--time_budget 2h`` sizes all of it to fit and prints the plan first (`mobileseg.pipeline_budget`:
``DIR/plan.json``, each step's stages cut at an epoch or generation boundary past their deadline, and
the summary's planned against actual seconds); ``--dry_run`` prints the plan and stops.

A step whose outputs are already in DIR is skipped (``search``: ``arch.yaml`` and
``pareto.json``; ``train``: ``model.keras`` and ``train_state.json`` finished with at least
``--train_epochs`` epochs; ``export``: ``model_int8.tflite`` and ``report.json``; ``bench``: its
JSON), unless a step before it ran in this invocation. A step left half done goes on: the
search keeps its measured blocks, supernet epochs and trials, training resumes after its last
epoch (export and bench, minutes at most, start over). So the same command, run again after an
interruption, picks up where it stopped, and a larger ``--train_epochs`` trains on.

The inputs (space file, data set and its splits, target, sizes against the space's output
stride, latency backend) are checked before any step starts; ``DIR/config.yaml`` gets a
``pipeline`` section, and a DIR holding a run of another space, data set or search size is
refused. At the end a summary table gives the searched network, the float and int8 mIoU, the
int8 latency against the target, the file size, and where every file is; it is also written
to ``DIR/summary.json``. Then ``python -m mobileseg.report`` writes the run report,
``DIR/report.html`` (`write_report`; kept when no step ran).

The pipeline holds DIR's lock (`mobileseg.run_lock`) from its checks to its summary, and its steps
work under it: another command on DIR is refused while it runs (exit 2, its pid named).

Exit codes: 0 done, 2 bad input (the pipeline's, or a step's: the step is named; a DIR another
command is running in), 1 a step failed (or the disk is full), 3 the phone was lost (search with
``--latency_backend adb``).

Example:
    python -m mobileseg.pipeline --space search_space/default.yaml \\
        --data camvid:../shared/datasets/camvid --run_dir runs/camvid_pipeline --target_latency_ms 20
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from mobileseg.pipeline_checks import check_inputs, record_settings
from mobileseg.pipeline_settings import PipelineError, PipelineSettings, settings_from_flags
from mobileseg.pipeline_steps import COMMANDS, StepFailed, run_steps, search_command, write_report
from mobileseg.pipeline_summary import format_summary, write_summary
from mobileseg.run.exit_codes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, BadInput


def run_pipeline(settings: PipelineSettings,
                 commands: Mapping[str, Callable[[PipelineSettings], Sequence[str]]] = COMMANDS,
                 log: Callable[[str], None] = print, explicit: Mapping[str, int | None] | None = None) -> int:
    """Check the inputs, [plan,] run the steps, print and write the summary; returns the exit code.

    Args:
        settings: the run.
        commands: each step's command line builder (default: `COMMANDS`); tests substitute them.
        log: where progress lines and the summary go.
        explicit: with a time budget, the sizes given on the command line (`mobileseg.pipeline_budget.SIZES`).
    """
    from mobileseg.atomic_write import AtomicWriteError
    from mobileseg.pipeline_budget import fit_training, plan_pipeline
    from mobileseg.run_lock import RunLockError, hold
    from mobileseg.timebudget.split import BudgetTooSmall

    def fail(error: Exception, code: int) -> int:
        print(f"mobileseg.pipeline: error: {error}", file=sys.stderr)
        return code

    try:
        with hold(settings.run_dir, "mobileseg.pipeline") as lock:
            started = time.time()
            settings = check_inputs(settings)
            if settings.time_budget or settings.dry_run:
                settings, _ = plan_pipeline(settings, search_command(settings)[3:], explicit or {}, started, log)
                if settings.dry_run:
                    return 0
            record_settings(settings)
            steps = run_steps(settings, commands, log, lock, before=lambda step, s: (
                fit_training(s, explicit or {}, log) if step == "train" else s))
            summary = write_summary(settings, steps, time.time() - started)
            write_report(settings, commands, steps, log)
    except (BadInput, RunLockError, BudgetTooSmall) as error:
        return fail(error, EXIT_BAD_INPUT)
    except StepFailed as error:
        return fail(error, error.exit_code)
    except (PipelineError, AtomicWriteError) as error:
        return fail(error, EXIT_FAILED)
    log(format_summary(summary))
    return EXIT_OK


def define_flags(flag_values=None) -> None:
    """Declare the flags (at start-up only, so importing this module declares nothing)."""
    from absl import flags

    from mobileseg.data.sources import DATA_FLAG_HELP

    fv = flags.FLAGS if flag_values is None else flag_values
    defaults = PipelineSettings(Path(), "", Path(), 0.0)

    def define(kind, name, default, help_text, **kwargs):
        getattr(flags, f"DEFINE_{kind}")(name, default, help_text, flag_values=fv, **kwargs)

    define("string", "space", None, "Search space YAML file, e.g. search_space/default.yaml.")
    define("string", "data", None, DATA_FLAG_HELP)
    define("string", "run_dir", None, "The run folder (created; a finished step in it is skipped).")
    define("float", "target_latency_ms", None, "Latency target of the int8 model (ms) for the search.")
    define("string", "search_input_size", None, "HEIGHTxWIDTH the search predicts latency at and the model ships "
           "at (default: the search's, half the images' size).")
    define("string", "input_size", None, "Training crop HEIGHTxWIDTH (default: the search's input size).")
    for name, what in (("supernet_epochs", "Supernet training epochs"), ("population", "NSGA-II population"),
                       ("generations", "NSGA-II generations")):
        define("integer", name, None, f"{what} (default: the search's --budget auto).", lower_bound=1)
    define("string", "references", None, "Reference networks on the Pareto plot: all, none, cheapest:K or "
           "FILE,FILE (default: the search's --budget auto).")
    define("integer", "train_epochs", defaults.train_epochs, "Training epochs of the chosen network.",
           lower_bound=1)
    define("integer", "batch_size", defaults.batch_size, "Batch size of the supernet, training and QAT.",
           lower_bound=1)
    define("integer", "qat_epochs", defaults.qat_epochs, "Quantization-aware fine-tuning epochs.", lower_bound=1)
    define("integer", "threads", defaults.threads, "LiteRT threads of every latency.", lower_bound=1)
    define("string", "latency_backend", defaults.latency_backend, "Where the search's latency comes from: "
           "local[:FILE] (LiteRT here), table:FILE (a measured table), adb[:FILE] (a phone, which bench "
           "then times the int8 model on).")
    define("string", "serial", None, "The phone's adb serial (default: the only one connected).")
    define("string", "latency_cache", None, "Folder of the persistent latency cache, or off (default: "
           "$MOBILESEG_LATENCY_CACHE, else ~/.cache/mobileseg): blocks measured before on this device are not "
           "measured again.")
    define("integer", "seed", defaults.seed, "Seeds every step.")
    define("string", "time_budget", None, "Fit the whole run in this time, e.g. 45m, 2h, 8h: the search's and "
           "training's sizes are chosen to fit from a few timed steps (size flags given win), the plan is printed "
           "and written to DIR/plan.json, and a stage that overruns its share stops at an epoch or generation "
           "boundary.")
    define("boolean", "dry_run", False, "Print the plan (stages, sizes, estimated durations; with --time_budget, "
           "sized to it), write DIR/plan.json, and stop.")



def run(fv, argv: Sequence[str]) -> int:
    """Run the pipeline the parsed flags describe; returns the exit code."""
    try:
        settings = settings_from_flags(fv, argv)
    except BadInput as error:
        print(f"mobileseg.pipeline: error: {error}", file=sys.stderr)
        return error.exit_code
    from mobileseg.latency.cache import use_folder

    use_folder(fv.latency_cache)  # the steps' subprocesses inherit it
    from mobileseg.pipeline_budget import SIZES

    return run_pipeline(settings, explicit={name: fv[name].value if fv[name].present else None for name in SIZES})


def main() -> None:
    """Entry point of ``python -m mobileseg.pipeline``."""
    from absl import app, flags

    from mobileseg.cli_flags import bad_input_parser
    from mobileseg.console import quiet_native_logs, run_command

    quiet_native_logs()
    define_flags()
    app.run(lambda argv: sys.exit(run_command(run, flags.FLAGS, argv)),
            flags_parser=bad_input_parser("mobileseg.pipeline"))


if __name__ == "__main__":
    main()
