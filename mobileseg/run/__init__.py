"""The run layer: what every command shares about a run, below the commands and above the library.

- `mobileseg.run.exit_codes`: the exit codes and `BadInput` (a flag value that cannot be used);
- `mobileseg.run.sizes`: a network's logits stride and the size checks against it;
- `mobileseg.run.latency_backend`: the grammar of ``--latency_backend``;
- `mobileseg.run.run_dir`: `RunDir`, the file names of a run folder;
- `mobileseg.run.run_config`: the run folder's ``config.yaml`` (read, record a section) and the resume rule;
- `mobileseg.run.fingerprint`: every stable hash (a genotype's key, canonical JSON, files).

Nothing here imports a command module (``tests/test_import_layers.py``).
"""
