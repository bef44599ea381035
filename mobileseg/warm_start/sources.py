"""The weights an ``--init`` names (`mobileseg.warm_start.initialize`), read into ``{name: array}``.

The kinds of ``--init``:

- ``FILE.keras`` (``model.keras`` or ``last.keras`` of another run): the model is loaded and
  its weights are named by their Keras path (``main_1_mbconv/project/conv/kernel``), so they
  match the new network's layers of the same name;
- ``FILE.weights.h5`` (Keras' ``save_weights`` file): it holds no layer names, only Keras'
  own keys (``layers/mb_conv_1/project/conv/vars/0``: a layer's class, its rank among the
  layers of that class, then its sublayers), so the new network's weights are given the keys
  Keras would write for them (`h5_keys`) and matched on those: the same network matches
  whole, another one where its layers line up by class and rank;
- ``supernet:DIR``: the weights that the network inherits from the supernet trained in
  ``DIR/supernet/`` (``python -m mobileseg.search --stage supernet``): the supernet of the
  space it was trained on is rebuilt from ``DIR/supernet/state.json``, its checkpoint loaded,
  and the network extracted (`mobileseg.supernet.model.Supernet.extract`: the first channels
  and kernel centres of the shared weights), which is what once-for-all fine-tunes from;
- ``imagenet:FILE`` is read by `mobileseg.warm_start.keras_applications`.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np

from mobileseg.warm_start.matching import InitError


def keras_file_weights(path: Path) -> dict[str, np.ndarray]:
    """``{weight path: value}`` of the model in a ``.keras`` file.

    Raises:
        InitError: not a ``.keras`` archive, or Keras cannot load it.
    """
    if not zipfile.is_zipfile(path):
        raise InitError(f"--init {path}: not a .keras model file (not a zip archive)")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a bad archive
        raise InitError(f"--init {path}: cannot load the model ({' '.join(str(error).split())[:300]})") from None
    return {variable.path: keras.ops.convert_to_numpy(variable) for variable in model.weights}


def _datasets(path: Path) -> dict[str, np.ndarray]:
    try:
        with h5py.File(path, "r") as file:
            if "layers" not in file:
                raise InitError(f"--init {path}: not a Keras .weights.h5 file (no 'layers' group); a legacy .h5 "
                                "of keras.applications goes with --init imagenet:FILE")
            found = {}
            file.visititems(lambda key, item: found.__setitem__(key, item[()]) if isinstance(item, h5py.Dataset)
                            else None)
            return found
    except OSError as error:
        raise InitError(f"--init {path}: not an HDF5 weights file ({error})") from None


def h5_keys(model: keras.Model) -> dict[str, str]:
    """``{key in a .weights.h5 file of model: weight path}``, the keys Keras' ``save_weights`` writes.

    Found by saving the model once with every weight filled with its own index (its values are
    put back after), so that it is Keras' own naming whatever its version does.
    """
    weights = [v for v in model.weights if int(np.prod(v.shape)) > 0]
    kept = [keras.ops.convert_to_numpy(v) for v in weights]
    try:
        for index, variable in enumerate(weights):
            variable.assign(np.full(tuple(variable.shape), index + 1, dtype=variable.dtype))
        with tempfile.TemporaryDirectory() as folder:
            file = Path(folder) / "keys.weights.h5"
            model.save_weights(file)
            saved = _datasets(file)
    finally:
        for variable, value in zip(weights, kept):
            variable.assign(value)
    keys = {}
    for key, value in saved.items():
        if value.size and np.all(value == value.flat[0]) and 1 <= value.flat[0] <= len(weights):
            index = int(value.flat[0]) - 1
            if tuple(value.shape) == tuple(weights[index].shape):
                keys[key] = weights[index].path
    return keys


def h5_file_weights(path: Path, model: keras.Model) -> dict[str, np.ndarray]:
    """The arrays of a ``.weights.h5`` file, named by ``model``'s weight paths where the keys agree.

    Keys of the file that ``model`` would not write keep their file key (they are reported unused).

    Raises:
        InitError: not an HDF5 file, or not one Keras' ``save_weights`` wrote.
    """
    arrays = _datasets(path)
    names = h5_keys(model)
    return {names.get(key, key): value for key, value in arrays.items()}


def supernet_weights(folder: Path, genotype) -> tuple[dict[str, np.ndarray], list[str]]:
    """The weights ``genotype`` inherits from the supernet trained in ``folder/supernet``, and a note.

    Raises:
        InitError: a damaged supernet folder, a space file that is no longer there, or a
            genotype that is not in the supernet's space.
    """
    from mobileseg.arch.genotype import Genotype, GenotypeError
    from mobileseg.arch.space import SearchSpace
    from mobileseg.state_files import StateFileError, read_json
    from mobileseg.supernet.model import Supernet
    from mobileseg.supernet.trainer import FOLDER, STATE, ResumeError, damaged_advice, load_supernet_weights

    what = f"--init supernet:{folder}"
    try:
        state = read_json(folder / FOLDER / STATE, damaged_advice(folder / FOLDER), ("epoch", "epochs", "fixed"))
        if state is None:
            raise InitError(f"{what}: {folder} holds no trained supernet (no {folder / FOLDER / STATE})")
        fixed = state["fixed"]
        for key in ("space", "num_classes", "input_size"):
            if key not in fixed:
                raise InitError(f"{what}: {folder / FOLDER / STATE} is damaged (no fixed.{key})")
        space_file = Path(fixed["space"])
        if not space_file.is_file():
            raise InitError(f"{what}: the supernet's space file {space_file} is not there (it is read relative to "
                            "the folder the search ran from: run from there)")
        if not isinstance(genotype, Genotype):
            raise InitError(f"{what}: {genotype.name} is built by another library, not a network of a space")
        supernet = Supernet(SearchSpace.load(space_file), int(fixed["num_classes"]), tuple(fixed["input_size"]))
        epoch = load_supernet_weights(supernet, folder)
    except (StateFileError, ResumeError, GenotypeError) as error:
        raise InitError(f"{what}: {error}") from None
    try:
        model = supernet.extract(genotype)
    except GenotypeError as error:
        raise InitError(f"{what}: {genotype.name} is not a network of the supernet's space {fixed['space']} "
                        f"({error})") from None
    note = (f"inherited from the supernet of {fixed['space']} at {fixed['input_size'][0]}x{fixed['input_size'][1]}, "
            f"trained {epoch} of {state['epochs']} epochs")
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}, [note]
