"""The run report's raster figures, drawn with matplotlib (no display needed) as PNG bytes.

`confusion_png` draws a confusion matrix normalised per ground-truth class; `samples_png`
a grid of test images with the ground truth and each model's prediction overlaid in the
classes' colours, with a legend.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

OVERLAY_ALPHA = 0.55
"""Weight of the class colours over the image in the sample figure."""


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def row_normalised(matrix) -> np.ndarray:
    """Each row divided by its sum (rows = ground truth); a row with no pixels stays 0.

    Example:
        >>> row_normalised([[3, 1], [0, 0]]).tolist()
        [[0.75, 0.25], [0.0, 0.0]]
    """
    matrix = np.asarray(matrix, np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def confusion_png(matrix, class_names: Sequence[str], title: str) -> bytes:
    """A confusion matrix as a heat map, each row (ground truth) in percent of its pixels.

    Example:
        >>> confusion_png([[5, 1], [2, 8]], ["sky", "road"], "int8")[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
        True
    """
    shares = row_normalised(matrix)
    count = len(class_names)
    side = 1.8 + 0.36 * count
    figure = _figure(side + 1.0, side)
    ax = figure.add_subplot()
    image = ax.imshow(100 * shares, cmap="Blues", vmin=0, vmax=100)
    ax.set_xticks(range(count), class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(count), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title(title, fontsize=10)
    if count <= 24:
        for row in range(count):
            for column in range(count):
                if shares[row, column] >= 0.005:
                    ax.text(column, row, f"{100 * shares[row, column]:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if shares[row, column] > 0.6 else "black")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of the class's pixels")
    figure.tight_layout()
    return _png(figure)


def samples_png(samples, colors, class_names: Sequence[str]) -> bytes:
    """One row per sample: the image, then the ground truth and each model's prediction over it.

    Args:
        samples: `mobileseg.report.quality.Sample` s (all with the same models).
        colors: uint8 [C, 3], the data set's class colours.
        class_names: one name per class, for the legend.
    """
    from matplotlib.patches import Patch

    from mobileseg.data.labels import colorize

    labels = list(samples[0].predictions)
    columns = 2 + len(labels)
    height, width = samples[0].image.shape[:2]
    cell = 2.6
    legend_height = 0.35 + 0.2 * -(-len(class_names) // 8)
    figure = _figure(cell * columns, cell * height / width * len(samples) + 0.3 + legend_height)
    axes = figure.subplots(len(samples), columns, squeeze=False)
    for row, sample in enumerate(samples):
        panels = [("image", None), ("ground truth", sample.truth),
                  *((f"{label} prediction", sample.predictions[label]) for label in labels)]
        for ax, (title, ids) in zip(axes[row], panels):
            ax.imshow(sample.image)
            if ids is not None:
                ax.imshow(colorize(ids, colors), alpha=OVERLAY_ALPHA)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
        axes[row][0].set_ylabel(sample.name, fontsize=7)
    handles = [Patch(facecolor=np.asarray(color) / 255.0, edgecolor="0.3", label=name)
               for name, color in zip(class_names, colors)]
    figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, legend_height / figure.get_figheight(), 1, 1))
    return _png(figure)
