"""Two small real run folders for the run report's tests, each made once per session.

- ``trained_run``: a run as ``train`` and ``export`` leave it, without a search: the tiny network
  of `tests.tiny_segmenters` trained a few steps (``model.keras``), its int8 TFLite file
  (``export/model_int8.tflite``), its ``arch.yaml``, a ``config.yaml`` naming the data set and a
  ``latency_table.json`` of its blocks, measured here with LiteRT. No Pareto front, no export
  report, no benchmark: those sections read "not in this run".
- ``searched_run``: a run as the search leaves it: NSGA-II over ``search_space/demo.yaml`` with
  the search's fast stand-in models (`mobileseg.search.testing`), its ``study.db`` (Optuna
  SQLite), ``pareto.json``, ``pareto.png`` and ``arch.yaml``. No model.
"""

from __future__ import annotations

import shutil

import pytest
import yaml

from mobileseg.data.sources import open_source
from tests import tiny_segmenters


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """The folder of a trained and exported tiny network (see the module docstring)."""
    from mobileseg.arch import schema_io
    from mobileseg.latency.block_model import block_model
    from mobileseg.latency.blocks import signatures_of
    from mobileseg.latency.device import local_fingerprint
    from mobileseg.latency.table import LatencyTable

    run = tmp_path_factory.mktemp("trained_run")
    num_classes = open_source(tiny_segmenters.DATA).num_classes
    paths = tiny_segmenters.save_models(tiny_segmenters.trained_model(steps=20), run, modes=("int8",))
    (run / "export").mkdir()
    shutil.move(paths["int8"], run / "export" / "model_int8.tflite")
    schema_io.dump(tiny_segmenters.GENOTYPE, run / "arch.yaml")
    (run / "config.yaml").write_text(yaml.safe_dump({
        "train": {"data": tiny_segmenters.DATA},
        "search": {"input_size": list(tiny_segmenters.INPUT_SIZE), "num_classes": num_classes}}))
    table = LatencyTable(local_fingerprint(threads=1), path=run / "latency_table.json")
    table.build(signatures_of(tiny_segmenters.GENOTYPE, tiny_segmenters.INPUT_SIZE, num_classes), block_model,
                progress=False)  # saved after every block
    return run


@pytest.fixture(scope="session")
def searched_run(tmp_path_factory):
    """The folder of a finished NSGA-II search without a trained model (see the module docstring)."""
    from mobileseg.arch.space import SearchSpace
    from mobileseg.search.nsga2 import EvolutionarySearch
    from mobileseg.search.pareto import write_outputs
    from mobileseg.search.study_storage import default_storage
    from mobileseg.search.testing import DEMO_SPACE, CapacityAccuracyModel, WidthLatencyModel

    run = tmp_path_factory.mktemp("searched_run")
    search = EvolutionarySearch(SearchSpace.load(DEMO_SPACE), CapacityAccuracyModel(), WidthLatencyModel(),
                                default_storage(run), population=6, generations=2, target_latency_ms=2.0)
    write_outputs(run, search.run(progress=None), latency_source="widths (mobileseg.search.testing)")
    (run / "config.yaml").write_text(yaml.safe_dump({"search": {"data": "synthetic:8", "space": str(DEMO_SPACE)}}))
    return run
