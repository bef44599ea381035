"""Data sets for segmentation: readers, checks and the tf.data input pipeline.

- `sources`: `open_source("KIND:PATH")`, the registry of kinds (camvid, cityscapes,
  ade20k, folder, synthetic); one module per reader (`camvid`, `cityscapes`, `ade20k`,
  `folder`, `synthetic`) on the interface of `source.SegmentationSource`.
- `labels`: the one ignore index (255), raw-label tables, colourising.
- `checks`: `verified_pairs` and `check_source`; `python -m mobileseg.data check`.
- `pipeline`: `train_dataset`, `eval_dataset`, `augment` (imports TensorFlow).
- `normalization`: MEAN_RGB / STD_RGB, the constants the model folds in.
- `problems`: `Problem` and `DataError`.

Importing this package imports nothing else, so the check CLI starts without TensorFlow.
"""
