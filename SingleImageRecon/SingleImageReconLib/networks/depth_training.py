"""Training the depth network on a synthetic dataset; one process or many under ``torchrun``.

Every process sees the same global order of samples (a permutation per epoch from the seed)
and takes its share of each global batch, and the loss is a mean over samples, so N processes
with batches of B/N follow the same path as one process with batches of B. State is saved at
the end of every epoch (model, optimiser, schedule, epoch) and a run resumes from it exactly.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from SyntheticDataGenLib.dataset.torch_dataset import IntensityJitter, SyntheticXrayDataset
from SyntheticDataGenLib.errors import XreconInputError

from .depth_bundle import bundle_metadata, environment, write_bundle
from .losses import DEPTH_LOSSES, MaskLoss, absolute_depth_loss, level_loss, presence_loss
from .depth_network import DEFAULT_FEATURES, DepthNet, reference_depth_mm
from .training_curves import plot_training_curves
from ..reconstruction.vertebral_chain import vertebral_chain


def config_values(config_class, path: str | None, overrides: list[str]) -> dict:
    """The options of a training config dataclass from a JSON file (optional) and ``key=value``
    overrides (values parsed as JSON, else taken as text); unknown keys are refused."""
    values = {}
    if path:
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise XreconInputError(f"cannot read training config {path}: {error}") from None
        if not isinstance(values, dict):
            raise XreconInputError(f"training config {path} must be a JSON object")
    for override in overrides:
        key, _, text = override.partition("=")
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    names = {f.name for f in dataclasses.fields(config_class)}
    unknown = set(values) - names
    if unknown:
        raise XreconInputError(f"unknown training option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
    return values


@dataclass
class TrainConfig:
    """Everything that decides a training run (saved with it; a resume must match)."""

    epochs: int = 20
    batch_size: int = 8  # global: split across processes
    optimiser: str = "adamw"  # or sgd (momentum 0.9)
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    depth_loss: str = "object-independent"  # or object-dependent, single
    variance_weight: float = 0.85  # 1 would leave the global depth scale unlearnt
    depth_weight: float = 1.0  # the scale-invariant (shape) terms
    absolute_weight: float = 1.0  # the depth error in mm (losses.absolute_depth_loss)
    absolute_scale_mm: float = 100.0  # 30 mm of error costs 0.3, as much as the masks: more starved them
    presence_weight: float = 0.5
    min_visible_px: int = 16  # a structure is "in the image" from this many mask pixels
    downsample: int = 1  # run the U-Net at 1/downsample of the image size (network.DepthNet); losses at that size
    vertebral_chain: bool = True  # vertebrae share a column mask and depths, told apart by a level map
    level_weight: float = 1.0  # the level map's mean absolute error, in levels
    features: list[int] = field(default_factory=lambda: list(DEFAULT_FEATURES))
    seed: int = 0
    jitter: bool = True
    steps_per_epoch: int = 0  # 0: one pass over the training split
    amp: bool = True  # on CUDA only

    @classmethod
    def from_sources(cls, path: str | None, overrides: list[str]) -> "TrainConfig":
        """A JSON config file (optional) with ``key=value`` overrides (values parsed as JSON)."""
        config = cls(**config_values(cls, path, overrides))
        if config.depth_loss not in DEPTH_LOSSES:
            raise XreconInputError(f"depth_loss must be one of {', '.join(DEPTH_LOSSES)}")
        if config.optimiser not in _OPTIMISERS:
            raise XreconInputError(f"optimiser must be one of {', '.join(_OPTIMISERS)}")
        return config


_OPTIMISERS = {
    "adamw": lambda parameters, config: torch.optim.AdamW(parameters, lr=config.learning_rate,
                                                          weight_decay=config.weight_decay),
    "sgd": lambda parameters, config: torch.optim.SGD(parameters, lr=config.learning_rate, momentum=0.9,
                                                      weight_decay=config.weight_decay),
}


def collate(items: list[dict]) -> dict:
    return {"image": torch.stack([i["image"] for i in items]), "masks": torch.stack([i["masks"] for i in items]),
            "front_mm": torch.stack([i["front_mm"] for i in items]), "back_mm": torch.stack([i["back_mm"] for i in items]),
            "present": torch.stack([i["present"] for i in items]),
            "reference_mm": torch.tensor([reference_depth_mm(i["geometry"]) for i in items], dtype=torch.float32),
            "id": [i["id"] for i in items]}


def visible_structures(masks: torch.Tensor, min_pixels: int) -> torch.Tensor:
    """(B, S) bool: structures with at least ``min_pixels`` mask pixels in the image."""
    return (masks > 0.5).flatten(2).sum(dim=-1) >= min_pixels


def pooled_targets(batch: dict, factor: int) -> dict:
    """The batch's masks and depth maps at 1/``factor`` of their size, for losses at the network's size.

    A pooled pixel is in a mask where most of its pixels were; its depths are the means over
    the pixels of that mask. Other entries are kept.
    """
    if factor == 1:
        return batch
    masks = batch["masks"]
    weight = F.avg_pool2d(masks, factor)
    pooled = dict(batch, masks=(weight > 0.5).to(masks.dtype))
    for key in ("front_mm", "back_mm"):
        pooled[key] = F.avg_pool2d(batch[key] * masks, factor) / weight.clamp(min=1e-6)
    return pooled


def chain_targets(masks: torch.Tensor, chain: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, 1, H, W) column mask, level map and where the level is defined (exactly one member there)."""
    members = masks[:, chain] > 0.5
    count = members.sum(dim=1, keepdim=True)
    positions = torch.arange(len(chain), dtype=masks.dtype, device=masks.device).view(1, -1, 1, 1)
    level = (members * positions).sum(dim=1, keepdim=True)
    return (count > 0).to(masks.dtype), level, count == 1


def per_sample_loss(prediction: dict, batch: dict, config: TrainConfig, mask_loss: MaskLoss,
                    chains: list[list[int]] = ()) -> torch.Tensor:
    """The loss of each sample, (B,): masks + presence + scale-invariant depth shape + depth in mm,
    and per chain its column mask and level map.

    ``batch["visible"]`` (B, S), when given, says which structures are in each image (else it
    is counted from the masks given).

    Every dataset structure counts in every sample: a case's labels must hold each dataset
    structure that its CT shows (reference and propagated labels do), so a structure without
    mask pixels is absent from the image, and learning that is the point of the presence term.
    """
    visible = batch["visible"] if "visible" in batch else visible_structures(batch["masks"], config.min_visible_px)
    valid = batch["masks"] > 0.5
    columns = [chain_targets(batch["masks"], chain) for chain in chains]
    depth_loss = DEPTH_LOSSES[config.depth_loss]
    losses = []
    for index in range(len(batch["image"])):
        one = slice(index, index + 1)
        masks = mask_loss(prediction["mask_logits"][one], batch["masks"][one], visible[one])
        presence = presence_loss(prediction["presence_logits"][one], visible[one])
        predicted = torch.cat([prediction["front_mm"][one], prediction["back_mm"][one]], dim=1)
        target = torch.cat([batch["front_mm"][one], batch["back_mm"][one]], dim=1)
        both_valid = torch.cat([valid[one]] * 2, dim=1)
        loss = (masks + config.presence_weight * presence
                + config.depth_weight * depth_loss(predicted, target, both_valid, config.variance_weight)
                + config.absolute_weight * absolute_depth_loss(predicted, target, both_valid, config.absolute_scale_mm))
        for g, (chain, (column, level, defined)) in enumerate(zip(chains, columns)):
            shown = visible[one][:, chain].any(dim=1, keepdim=True)
            loss = loss + mask_loss(prediction["chain_mask_logits"][one, g:g + 1], column[one], shown)
            loss = loss + config.level_weight * level_loss(prediction["level"][one, g:g + 1], level[one], defined[one])
        losses.append(loss)
    return torch.stack(losses)


def global_order(length: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(length)


def _distributed() -> tuple[int, int]:
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: SyntheticXrayDataset, device: torch.device, batch_size: int = 8,
             min_visible_px: int = 16, presence_threshold: float = 0.5) -> dict:
    """Validation figures: per structure and pooled over all.

    Per structure: mask Dice over the views that show it, median absolute front/back depth
    error (mm) on its true-mask pixels, and presence precision and recall (present = at least
    ``min_visible_px`` mask pixels; found = presence probability >= ``presence_threshold``).
    ``all`` pools the pixels and decisions of every structure.
    """
    model.eval()
    structures = dataset.structures
    count = len(structures)
    intersections, sums = np.zeros(count), np.zeros(count)
    true_pos, false_pos, false_neg = np.zeros(count), np.zeros(count), np.zeros(count)
    front_errors, back_errors = [[] for _ in structures], [[] for _ in structures]
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        prediction = {k: v.float().cpu() for k, v in
                      model(batch["image"].to(device), batch["reference_mm"].to(device)).items()}
        truth = batch["masks"] > 0.5
        visible = visible_structures(batch["masks"], min_visible_px)
        found = torch.sigmoid(prediction["presence_logits"]) >= presence_threshold
        true_pos += (found & visible).sum(0).numpy()
        false_pos += (found & ~visible).sum(0).numpy()
        false_neg += (~found & visible).sum(0).numpy()
        predicted_mask = prediction["mask_logits"] > 0
        for channel in range(count):
            rows = visible[:, channel]
            if not rows.any():
                continue
            p, t = predicted_mask[rows, channel], truth[rows, channel]
            intersections[channel] += (p & t).sum().item()
            sums[channel] += p.sum().item() + t.sum().item()
            front_errors[channel].append((prediction["front_mm"][rows, channel] - batch["front_mm"][rows, channel])[t].abs())
            back_errors[channel].append((prediction["back_mm"][rows, channel] - batch["back_mm"][rows, channel])[t].abs())
    model.train()

    def median(parts: list) -> float:
        values = torch.cat(parts) if parts else torch.zeros(0)
        return float(values.median()) if len(values) else math.nan

    def ratio(numerator: float, denominator: float) -> float:
        return float(numerator / denominator) if denominator else math.nan

    result = {}
    for channel, name in enumerate(structures):
        entry = {"presence_precision": ratio(true_pos[channel], true_pos[channel] + false_pos[channel]),
                 "presence_recall": ratio(true_pos[channel], true_pos[channel] + false_neg[channel]),
                 "views_present": int(true_pos[channel] + false_neg[channel])}
        if sums[channel]:
            entry.update({"dice": 2 * intersections[channel] / sums[channel],
                          "front_median_abs_error_mm": median(front_errors[channel]),
                          "back_median_abs_error_mm": median(back_errors[channel])})
        result[name] = entry
    result["all"] = {"presence_precision": ratio(true_pos.sum(), true_pos.sum() + false_pos.sum()),
                     "presence_recall": ratio(true_pos.sum(), true_pos.sum() + false_neg.sum()),
                     "front_median_abs_error_mm": median(sum(front_errors, [])),
                     "back_median_abs_error_mm": median(sum(back_errors, []))}
    return result


def train(dataset_dir: str | os.PathLike, out_dir: str | os.PathLike, config: TrainConfig,
          device: str = "auto", commands: list[str] | None = None, progress: bool = True,
          validation_dir: str | os.PathLike | None = None) -> dict:
    """Train, validate each epoch, checkpoint, and write the bundle into ``out_dir``; returns the last metrics.

    Validation uses the "validation" split of ``validation_dir`` when given, else of ``dataset_dir``.
    """
    rank, world = _distributed()
    if config.batch_size % world:
        raise XreconInputError(f"batch_size {config.batch_size} must divide among {world} processes")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    if device.type == "cuda" and world > 1:
        torch.cuda.set_device(rank % torch.cuda.device_count())
        device = torch.device("cuda", rank % torch.cuda.device_count())
    torch.manual_seed(config.seed)
    out_dir = Path(out_dir)
    training_dir = out_dir / "training"
    training_dir.mkdir(parents=True, exist_ok=True)
    jitter = IntensityJitter() if config.jitter else None
    train_set = SyntheticXrayDataset(dataset_dir, "train", jitter=jitter, seed=config.seed)
    validation = SyntheticXrayDataset(validation_dir or dataset_dir, "validation")
    if validation.structures != train_set.structures:
        raise XreconInputError(f"{validation_dir}: its structures differ from the training set's")
    if not len(train_set):
        raise XreconInputError(f"{dataset_dir} has no training samples")
    chains = [chain] if config.vertebral_chain and (chain := vertebral_chain(train_set.structures)) else []
    model = DepthNet(len(train_set.structures), config.features, config.downsample, chains).to(device)
    optimiser = _OPTIMISERS[config.optimiser](model.parameters(), config)
    per_epoch = config.steps_per_epoch or max(1, len(train_set) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate, total_steps=config.epochs * per_epoch)
    start_epoch, seconds_before = _resume(training_dir / "checkpoint.pt", config, model, optimiser, schedule)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    scaler = torch.amp.GradScaler("cuda", enabled=config.amp and device.type == "cuda")
    mask_loss = MaskLoss()
    local = config.batch_size // world
    writer = _tensorboard(training_dir) if rank == 0 else None
    metrics = {}
    started = time.perf_counter() - seconds_before  # wall time counts across resumed sittings
    for epoch in range(start_epoch, config.epochs):
        order = global_order(len(train_set), config.seed, epoch)
        losses = []
        steps = range(per_epoch)
        if progress and rank == 0:
            from tqdm import tqdm

            steps = tqdm(steps, desc=f"epoch {epoch + 1}/{config.epochs}", unit="step", dynamic_ncols=True)
        for step in steps:
            indices = [order[(step * config.batch_size + rank * local + i) % len(order)] for i in range(local)]
            batch = collate([train_set[int(i)] for i in indices])
            batch["visible"] = visible_structures(batch["masks"], config.min_visible_px)
            batch = pooled_targets({k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()},
                                   config.downsample)
            with torch.autocast(device.type, enabled=scaler.is_enabled()):
                prediction = ddp(batch["image"], batch["reference_mm"], full_size=False)
                loss = per_sample_loss(prediction, batch, config, mask_loss, chains).mean()
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            schedule.step()
            losses.append(loss.item())
        if rank == 0:
            metrics = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "seconds": time.perf_counter() - started,
                       "samples_seen": (epoch + 1) * per_epoch * config.batch_size}
            if len(validation):
                figures = evaluate(model, validation, device, min_visible_px=config.min_visible_px)
                metrics["validation"] = figures
                metrics["validation_dice_mean"] = float(np.mean([v["dice"] for v in figures.values() if "dice" in v]))
            _log(training_dir, writer, metrics)
            _save_checkpoint(training_dir / "checkpoint.pt", config, model, optimiser, schedule, epoch + 1,
                             metrics["seconds"])
    if rank == 0:
        image_size = tuple(train_set.header["settings"]["base_view"]["size_px"])
        extra = {"geometry": train_set.header["settings"]["base_view"], "training": {
            "dataset": str(dataset_dir), "dataset_command": train_set.header["command"],
            "validation_dataset": str(validation_dir or dataset_dir), "validation_command": validation.header["command"],
            "dataset_settings": train_set.header["settings"], "config": dataclasses.asdict(config),
            "commands": commands or [], "processes": world, "environment": environment(),
            "train_samples": len(train_set), "validation_samples": len(validation)},
            "validation": metrics.get("validation", {})}
        write_bundle(out_dir, model, bundle_metadata(train_set.structures, config.features, image_size, extra,
                                                     downsample=config.downsample, chains=chains))
        if writer is not None:
            writer.close()
    if world > 1:
        dist.barrier()
    return metrics


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # e.g. inside Slicer without it: metrics.csv has the same numbers
        return None
    return SummaryWriter(str(folder / "tensorboard"))


def _log(folder: Path, writer, metrics: dict) -> None:
    pooled = metrics.get("validation", {}).get("all", {})
    row = {"epoch": metrics["epoch"], "samples_seen": metrics["samples_seen"], "train_loss": metrics["train_loss"],
           "seconds": round(metrics["seconds"], 1), "validation_dice_mean": metrics.get("validation_dice_mean", ""),
           **{f"validation_{key}": pooled.get(key, "") for key in
              ("front_median_abs_error_mm", "back_median_abs_error_mm", "presence_precision", "presence_recall")}}
    path = folder / "metrics.csv"
    new = not path.exists()
    with path.open("a", newline="") as stream:
        writer_csv = csv.DictWriter(stream, fieldnames=list(row))
        if new:
            writer_csv.writeheader()
        writer_csv.writerow(row)
    (folder / "validation.json").write_text(json.dumps(metrics.get("validation", {}), indent=2))
    plot_training_curves(path, folder / "curves.png")
    if writer is not None:
        writer.add_scalar("loss/train", metrics["train_loss"], metrics["epoch"])
        if "validation_dice_mean" in metrics:
            writer.add_scalar("dice/validation_mean", metrics["validation_dice_mean"], metrics["epoch"])
            for key in ("front_median_abs_error_mm", "back_median_abs_error_mm"):
                writer.add_scalar(f"depth/validation_{key}", pooled[key], metrics["epoch"])


def _save_checkpoint(path: Path, config: TrainConfig, model, optimiser, schedule, epoch: int, seconds: float) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    torch.save({"config": dataclasses.asdict(config), "epoch": epoch, "seconds": seconds, "model": model.state_dict(),
                "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict()}, temporary)
    os.replace(temporary, path)


def _resume(path: Path, config: TrainConfig, model, optimiser, schedule) -> tuple[int, float]:
    """(epoch to start from, training seconds so far): (0, 0), or where a saved run of the same config stopped."""
    if not path.exists():
        return 0, 0.0
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state["config"] != dataclasses.asdict(config):
        raise XreconInputError(f"{path.parent.parent} holds a run with another config; use a new --out folder")
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    schedule.load_state_dict(state["schedule"])
    return int(state["epoch"]), float(state.get("seconds", 0.0))
