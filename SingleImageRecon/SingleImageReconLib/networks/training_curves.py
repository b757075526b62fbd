"""A picture of a training run: loss, validation mask Dice and median depth error (mm) per epoch."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from SyntheticDataGenLib.atomic_io import atomic_path

# (title, ((metrics.csv column, legend label), ...)) per panel
_PANELS = (("training loss", (("train_loss", None),)),
           ("validation mask Dice (mean over structures)", (("validation_dice_mean", None),)),
           ("validation median depth error (mm)", (("validation_front_median_abs_error_mm", "front"),
                                                   ("validation_back_median_abs_error_mm", "back"))))


def read_metrics(path: str | os.PathLike) -> list[dict[str, float]]:
    """Rows of a training ``metrics.csv`` as numbers (NaN where a cell is empty)."""
    with open(path, newline="") as stream:
        return [{key: float(value) if value not in ("", None) else math.nan for key, value in row.items()}
                for row in csv.DictReader(stream)]


def plot_training_curves(metrics_csv: str | os.PathLike, png: str | os.PathLike) -> Path:
    """Write ``png``: three panels against samples seen (loss; Dice; front and back depth error)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_csv)
    seen = [row["samples_seen"] / 1000 for row in rows]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.4), constrained_layout=True)
    for axis, (title, curves) in zip(axes, _PANELS):
        for key, label in curves:
            axis.plot(seen, [row.get(key, math.nan) for row in rows], marker="o", markersize=3, label=label)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("samples seen (thousands)")
        axis.grid(alpha=0.3)
    axes[2].legend()
    with atomic_path(png, "training curves", suffix=".partial.png") as temporary:
        figure.savefig(temporary, dpi=110)
    plt.close(figure)
    return Path(png)
