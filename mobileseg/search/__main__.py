"""``python -m mobileseg.search --space SPACE.yaml --data KIND:PATH --run_dir DIR [flags]``.

Searches a space for the networks that trade proxy mIoU against latency best, into a run
folder (docs/architecture.md, section 1), in four stages (this command parses the flags,
`mobileseg.search.search_flags`, and maps errors to exit codes; the checks and resume rules are
`mobileseg.search.search_plan`, the stages `mobileseg.search.stages`):

1. **latency**: every block the space can produce at ``--input_size``
   (`mobileseg.latency.space_blocks.enumerate_space`), then every block of the reference networks
   placed on the plot, that the latency table lacks is built alone, converted to int8 TFLite
   and timed: on this CPU with LiteRT (``--latency_backend local``, the default, into
   ``DIR/latency_table.json``; ``local:FILE`` keeps the table elsewhere, e.g. to share it
   between runs; blocks this device measured before, for any table, are taken from the
   persistent cache, `mobileseg.latency.cache`, ``--latency_cache DIR|off``), or on an
   Android phone with ``benchmark_model`` (``adb`` / ``adb:FILE``, the
   phone ``--serial``, the executable ``--adb``). ``table:FILE`` reads a finished table (any
   device's, e.g. from ``python -m mobileseg.latency build``) and measures nothing: it must
   hold every block of the space. The table is saved after every block.
2. **supernet**: the weight-sharing supernet of the space at ``--input_size`` is trained with
   the sandwich rule (`mobileseg.supernet.trainer`) for ``--supernet_epochs`` into
   ``DIR/supernet/``, checkpointed after every epoch.
3. **search**: NSGA-II (`mobileseg.search.nsga2.EvolutionarySearch`) over ``--generations``
   generations of ``--population`` networks, maximising the proxy mIoU
   (`mobileseg.supernet.accuracy.SupernetAccuracyModel`: inherited weights, batch norm
   recalibrated on ``--calib_batches`` training batches, mIoU on ``--val_images`` validation
   images) and minimising the predicted latency (sum of the table's blocks); with
   ``--target_latency_ms`` the latency is a constraint (constrained NSGA-II). One line per
   generation. Every trial is stored in ``--storage`` (``DIR/study.db``, SQLite, by default).
4. **outputs**: ``pareto.json``, ``pareto.png`` (every network, the front, the target, the
   chosen network and the references) and ``arch.yaml`` (the best proxy mIoU within the target,
   else the knee of the front; `mobileseg.search.pareto`); the summary is printed.

``--stage supernet`` runs stage 2 only, ``--stage search`` stages 1, 3 and 4 on the supernet
already trained in DIR, ``--stage all`` (the default) all four. ``DIR/config.yaml`` gets a
``search`` section with every flag, resolved; ``DIR/search_state.json`` says which stages ran,
how long each took and the machine's load.

Strategies (``--strategy``): ``evolutionary`` (the default) is the flow above. ``differentiable``
(`mobileseg.search.differentiable`: GAS-style per-cell architecture logits, with GAS's GCN between
neighbouring cells unless ``--nogcn``, a straight-through Gumbel path through the supernet, and
FasterSeg's ``CE + lambda * expected latency`` loss from the same latency table, lambda steered
towards ``--target_latency_ms``) replaces stages 2 and 3 by one stage that trains the supernet's
weights and the architecture together for ``--supernet_epochs`` epochs on the two halves of the
training split, into ``DIR/differentiable/`` (checkpointed after every epoch, resumed by the same
command); every epoch's most likely network is one trial of the outputs (stage 4, the same files).
For it ``--stage supernet``, ``search`` and ``all`` all run stage 1 (the shared latency table) then
that stage; ``--population``, ``--generations``, ``--storage`` and ``--study_name`` are not used.
``random`` (`mobileseg.search.random_search`, the baseline a search must beat; needs
``--target_latency_ms``) replaces stages 2 and 3 by ``--population`` x ``--generations`` seeded
random networks scored by their predicted latency only, and ``arch.yaml`` is the one within the
target with the highest predicted latency; every ``--stage`` runs stage 1, that, and the outputs.
With ``--random_score supernet`` it is random search with weight sharing, at the evolutionary
search's cost: stage 2 as above (``--stage`` as for ``evolutionary``), then ``--population`` x
``--generations`` random networks within the target, each scored with the proxy mIoU NSGA-II uses
(kept in ``DIR/random_scores.json`` as they come: a killed run resumes), and ``arch.yaml`` the best.

Sizes: networks are trained, scored and timed at ``--input_size`` (the search resolution,
also the size the latency is predicted for). By default it is half of the data set's image
size (its first training image), each side rounded to the nearest multiple of the space's
output stride: CamVid's 360x480 gives 184x240, ``synthetic:N`` (120x160) 64x80. Training crops
are taken from images scaled by ``--search_scale`` times 0.5 to 2 (default: the input size
over the image size, the smaller of the two ratios), so the supernet sees objects at the size
the validation images are scored at.

Budget: the flags ``--supernet_epochs``, ``--population``, ``--generations``,
``--calib_batches`` and ``--references`` default to those of ``--budget``
(`mobileseg.search.budget`): ``auto`` picks ``demo`` (minutes) for a data set of fewer than
100 training images and ``default`` (hours on a 2-core CPU) otherwise.

Time budget: ``--time_budget 45m`` (`mobileseg.timebudget`) times a few steps of every stage on the
data (`mobileseg.search.cost_probe`), sizes ``--supernet_epochs``, ``--population`` and
``--generations`` to fit (those given win; the rule: `mobileseg.timebudget.split`), prints the plan and
writes it to ``DIR/plan.json``; the supernet and the NSGA-II search then stop at an epoch or generation
boundary when another would end past their deadline, and the outputs are written from what they have.
``--dry_run`` prints and writes the plan only. ``--time_plan FILE`` keeps to the deadlines of a plan made
elsewhere (the pipeline's). Both need ``--strategy evolutionary --stage all``.

References (``--references``, `mobileseg.search.reference_choice`): ``all`` the networks of
``search_space/references/``, ``none``, ``cheapest:K`` the K of them with the fewest blocks to
measure, or ``FILE,FILE``. They are placed with the same latency model (their blocks are
measured once into the same table in stage 1); those inside the space also get a proxy mIoU.

Resume: started again with the same command, a killed search goes on where it stopped. The
latency table keeps every block measured, the supernet resumes after its last completed epoch
(epochs done are not trained again) and the study goes on with the generations it lacks
(trials stored are not evaluated again). ``--generations`` may be raised to search longer. A
study scored with a supernet trained for another number of epochs, or with another proxy
budget or latency backend, is not continued: use a new ``--study_name``.

Several workers on one study (README, "Several workers"): give every worker the same ``--storage``
database server and ``--study_name``, e.g. ``--storage postgresql://user:password@host/search``
(driver: psycopg2-binary, in requirements.txt); each worker runs ``--stage search`` in its own DIR
holding a copy of the same trained ``supernet/`` and of the same table (``--latency_backend
table:FILE``: copies of one table are one backend, recorded by its contents), and each sees the
others' trials at every generation. With ``--storage`` a worker is named by its host and DIR: the
name seeds its draws with ``--seed`` and tags its trials (`mobileseg.search.nsga2`), and
``search_state.json``'s ``new_trials`` counts its own. A killed worker loses only its unfinished
generation; the same command again resumes it. SQLite (the default) is for one process.

One command at a time in DIR: the search holds ``DIR/.lock`` while it runs (`mobileseg.run_lock`),
and a second command on the same folder is refused (exit 2) with the pid of the one running.

Exit codes: 0 done; 1 failure (a diverged supernet, a benchmark that failed on the phone, a full
disk: the file being written is left as it was); 2 bad input: a missing or malformed space, a bad
``--data`` (or one without train and val images), a bad ``--input_size`` (not HEIGHTxWIDTH, or not
a multiple of the space's output stride), a bad flag value, a ``table:`` file that is missing or
lacks blocks of the space, ``--stage search`` without a trained supernet, a DIR holding a search
of another space, data set or input size (or a supernet or study with other settings), a damaged
``supernet/checkpoint.npz``, ``supernet/state.json`` or ``study.db`` (the message says what to
do), a DIR another command is running in; bad input changes nothing in DIR; 3 the phone could
not be reached or was lost (adb): every block measured is saved, connect it and run the same
command again.

Example:
    python -m mobileseg.search --space search_space/demo.yaml --data synthetic:64 --run_dir runs/demo_search
    python -m mobileseg.search --strategy differentiable --space search_space/demo.yaml --data synthetic:64 \\
        --target_latency_ms 5 --run_dir runs/demo_differentiable
    python -m mobileseg.search --strategy random --space search_space/demo.yaml --data synthetic:64 \\
        --target_latency_ms 5 --run_dir runs/demo_random
    python -m mobileseg.search --strategy random --random_score supernet --space search_space/demo.yaml \\
        --data synthetic:64 --target_latency_ms 5 --run_dir runs/demo_random_supernet
    python -m mobileseg.search --space search_space/default.yaml --data camvid:../shared/datasets/camvid \\
        --target_latency_ms 30 --run_dir runs/camvid_search
    python -m mobileseg.search --space search_space/default.yaml --data camvid:../shared/datasets/camvid \\
        --latency_backend adb --serial 28241FDH3001AB --threads 4 --run_dir runs/camvid_pixel7
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from mobileseg.run.exit_codes import EXIT_BAD_INPUT, EXIT_DEVICE_LOST, EXIT_FAILED, EXIT_OK, BadInput
from mobileseg.search.search_flags import define_flags


def run(flag_values, argv: Sequence[str]) -> int:
    """Search as the parsed flags say; returns the exit code."""
    from mobileseg.android.errors import (AdbError, AdbNotFoundError, AndroidBenchError, DeviceLost,
                                          MultipleDevicesError)
    from mobileseg.arch.schema_io import GenotypeError
    from mobileseg.atomic_write import AtomicWriteError
    from mobileseg.data.problems import DataError
    from mobileseg.latency.cache import use_folder
    from mobileseg.run_lock import RunLockError, hold
    from mobileseg.search.nsga2 import SearchError
    from mobileseg.search.search_plan import check_inputs
    from mobileseg.search.stages import BuildInterrupted, execute
    from mobileseg.search.time_budget import with_time_plan
    from mobileseg.state_files import StateFileError
    from mobileseg.timebudget.split import BudgetTooSmall
    from mobileseg.timebudget.time_plan import PlanError
    from mobileseg.training.errors import TrainingDiverged, TrainingError

    def fail(message: str, code: int) -> int:
        print(f"mobileseg.search: error: {message}", file=sys.stderr)
        return code

    if len(argv) > 1:
        return fail(f"unexpected arguments {list(argv[1:])}", EXIT_BAD_INPUT)
    missing = [f"--{name}" for name in ("space", "data", "run_dir") if not flag_values[name].value]
    if missing:
        return fail(f"{', '.join(missing)} required", EXIT_BAD_INPUT)
    use_folder(flag_values.latency_cache)
    started = time.time()
    try:
        with hold(flag_values.run_dir, "mobileseg.search"):
            plan = check_inputs(flag_values)
            if flag_values.time_budget or flag_values.dry_run or flag_values.time_plan:
                plan = with_time_plan(flag_values, plan, started)
            if plan is not None:
                execute(plan)
    except BuildInterrupted as error:
        print(error, file=sys.stderr)
        return EXIT_DEVICE_LOST
    except DeviceLost as error:
        return fail(f"{error}\nEvery block measured so far is saved in the latency table; reconnect the phone and "
                    "run the same command again to go on.", EXIT_DEVICE_LOST)
    except (AdbNotFoundError, MultipleDevicesError) as error:
        return fail(str(error), EXIT_BAD_INPUT)
    except AdbError as error:
        return fail(f"{error}\nConnect the phone and run the same command again.", EXIT_DEVICE_LOST)
    except TrainingDiverged as error:
        return fail(str(error), EXIT_FAILED)
    except DataError as error:
        message = str(error) if str(error).startswith("--data") else f"--data {flag_values.data}: {error}"
        return fail(message, EXIT_BAD_INPUT)
    except (BadInput, GenotypeError, TrainingError, SearchError, StateFileError, RunLockError, BudgetTooSmall,
            PlanError) as error:
        return fail(str(error), EXIT_BAD_INPUT)
    except (AndroidBenchError, AtomicWriteError) as error:
        return fail(str(error), EXIT_FAILED)
    return EXIT_OK


def main() -> None:
    """Entry point of ``python -m mobileseg.search``."""
    import warnings

    from absl import app, flags

    from mobileseg.cli_flags import bad_input_parser
    from mobileseg.console import quiet_native_logs, run_command

    quiet_native_logs()
    # the TFLite converter's int8 calibration still uses tf.lite.Interpreter internally
    warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
    define_flags()
    app.run(lambda argv: sys.exit(run_command(run, flags.FLAGS, argv)),
            flags_parser=bad_input_parser("mobileseg.search"))


if __name__ == "__main__":
    main()
