"""``python -m mobileseg.predict --model PATH --input FILE_OR_DIR --out DIR``.

Segments one image or every image of a folder (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``;
not recursive, sorted by name) with a ``.keras`` or ``.tflite`` model, through
`mobileseg.inference.Segmenter` (the same code as evaluation: resized to the
model's input size, predictions back at each image's full size), and writes two PNGs
per image into ``--out``:

- ``NAME_mask.png``: the predicted classes in their colours;
- ``NAME_overlay.png``: the image with those colours blended over it (``--alpha``).

NAME is the image's file name without its suffix (with it, as ``a_jpg``, when two
inputs share a stem). Colours come from the model's sidecar (``NAME.json`` next to
the model, see `mobileseg.inference.read_sidecar`), else from a fixed palette.

An image that cannot be read (not an image, truncated) is reported on stderr with
its path and skipped; the others are still written, and the command exits with 1 at
the end, saying how many failed. ``--json`` prints ``{"written": [...], "failed":
[{"image": ..., "error": ...}]}``. Exit codes: 0 every image written, 1 some images
unreadable, 2 bad input (model, missing input, a folder without images).

Example:
    python -m mobileseg.predict --model runs/camvid/export/model_int8.tflite --input photos/ --out predictions/
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
"""Image files a folder input is searched for (case-insensitive)."""


class PredictInputError(ValueError):
    """An --input that names no image to segment (the path is named)."""


def list_images(path: str | Path) -> list[Path]:
    """The images to segment: the file itself, or a folder's images sorted by name.

    Raises:
        PredictInputError: nothing at ``path``, or a folder without images.

    Example:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> for name in ("b.JPG", "a.png", "notes.txt"):
        ...     _ = (folder / name).write_bytes(b"")
        >>> [p.name for p in list_images(folder)]
        ['a.png', 'b.JPG']
        >>> list_images(folder / "none")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mobileseg.predict.PredictInputError: no such image or folder: .../none
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise PredictInputError(f"no such image or folder: {path}")
    images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise PredictInputError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return images


def output_stems(images: Sequence[Path]) -> list[str]:
    """The NAME of each image's outputs: its stem, or stem and suffix when stems collide.

    Example:
        >>> output_stems([Path("a.png"), Path("a.jpg"), Path("b.png")])
        ['a_png', 'a_jpg', 'b']
    """
    stems = [p.stem for p in images]
    return [f"{p.stem}_{p.suffix.lstrip('.')}" if stems.count(p.stem) > 1 else p.stem for p in images]


class UnreadableImage(OSError):
    """An image file that cannot be decoded completely; the message is the reason."""


def read_image(path: Path) -> np.ndarray:
    """An image file as uint8 RGB [H, W, 3] (grey and RGBA are converted).

    Raises:
        UnreadableImage: not an image PIL can identify, truncated or corrupt.

    Example:
        >>> import pathlib, tempfile
        >>> bad = pathlib.Path(tempfile.mkdtemp()) / "bad.png"
        >>> _ = bad.write_bytes(b"not a png")
        >>> read_image(bad)
        Traceback (most recent call last):
        ...
        mobileseg.predict.UnreadableImage: not an image file PIL can identify
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except UnidentifiedImageError:
        raise UnreadableImage("not an image file PIL can identify") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise UnreadableImage(f"truncated or corrupt image ({error})") from None


def overlay(image: np.ndarray, colored: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - alpha) * image + alpha * colored``, rounded to uint8.

    Example:
        >>> overlay(np.full((1, 1, 3), 200, np.uint8), np.zeros((1, 1, 3), np.uint8), 0.25).tolist()
        [[[150, 150, 150]]]
    """
    blend = (1.0 - alpha) * image.astype(np.float32) + alpha * colored.astype(np.float32)
    return np.clip(np.round(blend), 0, 255).astype(np.uint8)


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def predict_images(segmenter, images: Sequence[Path], out_dir: str | Path, *, alpha: float = 0.5,
                   progress: bool | None = None) -> dict:
    """Segment images one by one and write ``NAME_mask.png`` and ``NAME_overlay.png`` for each.

    Args:
        segmenter: a `mobileseg.inference.Segmenter`.
        images: image files.
        out_dir: the output folder (created when missing).
        alpha: weight of the class colours in the overlay, 0..1.
        progress: show a progress bar on stderr (None: only on a terminal).

    Returns:
        ``{"written": [output paths], "failed": [{"image": path, "error": reason}]}``;
        an unreadable image is reported on stderr as it is met and skipped.

    Example:
        >>> import keras, pathlib, tempfile
        >>> from PIL import Image
        >>> from mobileseg.inference import Segmenter
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> inputs = keras.Input((8, 8, 3))
        >>> keras.Model(inputs, keras.layers.Conv2D(2, 1, strides=2)(inputs)).save(folder / "m.keras")
        >>> Image.new("RGB", (20, 10)).save(folder / "street.png")
        >>> segmenter = Segmenter.load(folder / "m.keras")
        >>> report = predict_images(segmenter, [folder / "street.png"], folder / "out", progress=False)
        >>> [pathlib.Path(p).name for p in report["written"]], report["failed"]
        (['street_mask.png', 'street_overlay.png'], [])
    """
    from tqdm import tqdm

    from mobileseg.atomic_write import write_atomic
    from mobileseg.data.labels import colorize

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    out_dir = Path(out_dir)
    written, failed = [], []
    bar = tqdm(list(zip(images, output_stems(images))), desc="predicting", unit="image", file=sys.stderr,
               disable=None if progress is None else not progress, leave=False)
    for path, stem in bar:
        try:
            image = read_image(path)
        except UnreadableImage as error:
            reason = f"unreadable image: {error}"
            print(f"mobileseg.predict: error: {path}: {reason}", file=sys.stderr)
            failed.append({"image": str(path), "error": reason})
            continue
        ids = segmenter.predict(image[None].astype(np.float32))[0]
        colored = colorize(ids, segmenter.colors)
        for suffix, picture in (("mask", colored), ("overlay", overlay(image, colored, alpha))):
            written.append(str(write_atomic(out_dir / f"{stem}_{suffix}.png", _png(picture))))
    return {"written": written, "failed": failed}


def define_flags(flag_values=None) -> None:
    """Declare the flags (at start-up only, so importing this module declares nothing)."""
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    flags.DEFINE_string("model", None, "The model: a .keras or .tflite file.", flag_values=flag_values)
    flags.DEFINE_string("input", None, "An image, or a folder of images (.png, .jpg, .jpeg, .bmp).",
                        flag_values=flag_values)
    flags.DEFINE_string("out", None, "Folder for NAME_mask.png and NAME_overlay.png (created).",
                        flag_values=flag_values)
    flags.DEFINE_float("alpha", 0.5, "Weight of the class colours in the overlay.", lower_bound=0.0,
                       upper_bound=1.0, flag_values=flag_values)
    flags.DEFINE_integer("threads", None, "LiteRT threads (default: every core).", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_bool("json", False, "Print the written files and failures as JSON.", flag_values=flag_values)
    flags.DEFINE_bool("progress", True, "Show a progress bar on stderr.", flag_values=flag_values)


def run(flag_values, argv: Sequence[str]) -> int:
    """Predict as the parsed flags say; returns the exit code."""
    from mobileseg.inference import ModelError, Segmenter

    if len(argv) > 1:
        print(f"mobileseg.predict: error: unexpected arguments {list(argv[1:])}", file=sys.stderr)
        return 2
    missing = [f"--{name}" for name in ("model", "input", "out") if not flag_values[name].value]
    if missing:
        print(f"mobileseg.predict: error: {', '.join(missing)} required", file=sys.stderr)
        return 2
    try:
        images = list_images(flag_values.input)
        segmenter = Segmenter.load(flag_values.model, num_threads=flag_values.threads)
    except (ModelError, PredictInputError) as error:
        print(f"mobileseg.predict: error: {error}", file=sys.stderr)
        return 2
    report = predict_images(segmenter, images, flag_values.out, alpha=flag_values.alpha,
                            progress=flag_values.progress)
    done = len(images) - len(report["failed"])
    if flag_values.json:
        print(json.dumps(report))
    else:
        print(f"{done} of {len(images)} image(s) segmented; masks and overlays in {flag_values.out}")
    if report["failed"]:
        print(f"mobileseg.predict: {len(report['failed'])} of {len(images)} image(s) could not be read: "
              f"{', '.join(f['image'] for f in report['failed'])}", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    """Entry point of ``python -m mobileseg.predict``."""
    from mobileseg.cli_flags import absl_main

    absl_main(define_flags, run)


if __name__ == "__main__":
    main()
