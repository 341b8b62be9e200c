"""What a run leaves in its directory each epoch: metrics.csv and TensorBoard events (its
curves.png is drawn by cnnzoo.viz.plot_curves)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

COLUMNS = [
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "val_top5",
    "images_per_s",
    "time_s",
]


def write_metrics_csv(history: list[dict], path: Path) -> None:
    """The whole history, rewritten each epoch (so a resumed run's file has no duplicate rows)."""
    tmp = path.with_suffix(".csv.tmp")
    try:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(history)
        os.replace(tmp, path)
    finally:  # a failed write (a full disk) leaves the previous file and no temporary one
        tmp.unlink(missing_ok=True)


class TensorBoardLog:
    """Scalars per epoch under ``run_dir``; a no-op when disabled (or TensorBoard is missing)."""

    def __init__(self, run_dir: Path, enabled: bool, start_epoch: int = 0) -> None:
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is a dependency, but a broken install should not stop
                return  # training
            self.writer = SummaryWriter(str(run_dir), purge_step=start_epoch + 1 or None)

    def log(self, row: dict) -> None:
        if self.writer is None:
            return
        step = row["epoch"]
        for split in ("train", "val"):
            self.writer.add_scalar(f"loss/{split}", row[f"{split}_loss"], step)
            self.writer.add_scalar(f"accuracy/{split}", row[f"{split}_acc"], step)
        self.writer.add_scalar("lr", row["lr"], step)
        self.writer.add_scalar("images_per_s", row["images_per_s"], step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
