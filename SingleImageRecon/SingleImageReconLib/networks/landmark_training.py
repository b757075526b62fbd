"""Training the landmark network (:mod:`.landmark_network`) on a synthetic dataset.

The landmarks are the union of the training samples' landmark labels (``<structure>/<name>``,
from each case's ``landmarks.mrk.json``), in the bundle's fixed order. A sample's landmark is
*known* when its case places it, and *visible* when it projects onto the detector. The
landmarks of a bone its case has no label for are known too, and never visible: a chest CT
holds no femur, so its images teach that no femur is there (the labels are taken as complete
for the bones in the scan; a bone the scan cuts, whose landmarks outside it are unplaced, says
nothing about those). Checkpoints every epoch; a run resumes.

Validation figures (per epoch, on held-out views): median error in pixels of the visible
landmarks the network finds, the calibration of σ (the fraction of true points within 1σ and
2σ, against 39.3 % and 86.5 % for a 2D Gaussian), and presence precision and recall. After the
last epoch σ's scale is calibrated on the validation views, patients the training never saw
(:func:`calibrate_sigma`), and kept in the bundle: report calibration on a third set.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from monai.metrics import compute_roc_auc

from SyntheticDataGenLib.dataset.torch_dataset import IntensityJitter, SyntheticXrayDataset
from SyntheticDataGenLib.errors import XreconInputError

from .landmark_network import LandmarkNet, landmark_loss
from .depth_training import _resume, _save_checkpoint, config_values, global_order

WITHIN_1_SIGMA = 1.0 - math.exp(-0.5)  # 0.393: a 2D isotropic Gaussian's mass within radius σ
WITHIN_2_SIGMA = 1.0 - math.exp(-2.0)  # 0.865


@dataclass
class LandmarkTrainConfig:
    """Everything that decides a landmark training run (saved with it; a resume must match)."""

    epochs: int = 20
    batch_size: int = 8
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    presence_weight: float = 1.0
    #: β of the β-NLL (0: the plain Gaussian NLL, which let the first bundle's σ run away)
    nll_beta: float = 0.5
    #: weight of the heatmap cross-entropy against a Gaussian of σ heatmap_sigma_px at the true point
    heatmap_weight: float = 1.0
    heatmap_sigma_px: float = 4.0
    downsample: int = 2
    features: list[int] = field(default_factory=lambda: [32, 32, 64, 128, 256, 32])
    seed: int = 0
    jitter: bool = True
    steps_per_epoch: int = 0

    @classmethod
    def from_sources(cls, path: str | None, overrides: list[str]) -> "LandmarkTrainConfig":
        config = cls(**config_values(cls, path, overrides))
        if not (isinstance(config.epochs, int) and config.epochs > 0 and isinstance(config.batch_size, int)
                and config.batch_size > 0 and config.downsample in (1, 2, 4)
                and isinstance(config.learning_rate, (int, float)) and 0 < config.learning_rate < 1
                and isinstance(config.features, list) and len(config.features) == 6
                and all(isinstance(f, int) and f > 0 for f in config.features)
                and all(isinstance(value, (int, float)) and 0 <= value < 1e3
                        for value in (config.presence_weight, config.heatmap_weight))
                and isinstance(config.nll_beta, (int, float)) and 0 <= config.nll_beta <= 1
                and isinstance(config.heatmap_sigma_px, (int, float)) and 0.5 <= config.heatmap_sigma_px <= 64):
            raise XreconInputError("epochs and batch_size must be positive integers, downsample 1, 2 or 4, "
                                   "learning_rate in (0, 1), features six positive integers, presence_weight and "
                                   "heatmap_weight >= 0, nll_beta in [0, 1], heatmap_sigma_px in [0.5, 64]")
        return config


def landmark_vocabulary(dataset: SyntheticXrayDataset) -> list[str]:
    """Every landmark label of the dataset's rows on one of its structures, grouped by structure
    in the dataset's structure order."""
    rank = {name: index for index, name in enumerate(dataset.structures)}
    labels = {label for row in dataset.rows for label in row.get("landmark_labels", []) if label.split("/")[0] in rank}
    return sorted(labels, key=lambda label: (rank[label.split("/")[0]], label))


class LandmarkSamples(torch.utils.data.Dataset):
    """A dataset split as (image, uv_px (L, 2), visible (L,), known (L,)) in a fixed landmark order."""

    def __init__(self, dataset: SyntheticXrayDataset, landmarks: list[str]):
        self.dataset = dataset
        self.index = {label: i for i, label in enumerate(landmarks)}
        self.count = len(landmarks)
        self.structures = [label.split("/")[0] for label in landmarks]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: int) -> dict:
        row = self.dataset.rows[item]
        arrays = self.dataset.arrays(item, ("image", "landmarks_uv", "landmarks_visible", "landmarks_known"))
        if "image" not in arrays:
            raise XreconInputError(f"{row['file']} holds no image")
        uv = np.zeros((self.count, 2), np.float32)
        visible = np.zeros(self.count, bool)
        known = np.zeros(self.count, bool)
        labels = row.get("landmark_labels", [])
        if labels and "landmarks_uv" in arrays:
            slots = np.array([self.index.get(label, -1) for label in labels])
            keep = slots >= 0
            case_known = arrays.get("landmarks_known", np.ones(len(labels), bool))
            uv[slots[keep]] = np.nan_to_num(arrays["landmarks_uv"][keep])
            visible[slots[keep]] = arrays["landmarks_visible"][keep]
            known[slots[keep]] = case_known[keep]
            present = {label.split("/")[0] for label in labels}
            known |= np.array([structure not in present for structure in self.structures])  # absent bones
        return {"image": self.dataset.network_image(item, arrays["image"]), "uv_px": torch.from_numpy(uv),
                "visible": torch.from_numpy(visible), "known": torch.from_numpy(known)}


def batch_of(samples: LandmarkSamples, indices, device) -> dict:
    """The samples at ``indices`` stacked into tensors on ``device``."""
    items = [samples[int(i)] for i in indices]
    return {key: torch.stack([item[key] for item in items]).to(device) for key in items[0]}


@dataclass(frozen=True)
class LandmarkOutcomes:
    """What a network did on a set of views, per landmark slot (L) and per scored landmark (M:
    visible, known and found): each scored landmark's slot, error and σ (px), and per slot the
    presence decisions' true positives, false positives (found, not visible, known: in the image
    elsewhere, or of a bone the case lacks) and false negatives; and, for every visible known
    landmark whether found or not, its slot and the heatmap's error (px), which tells a network
    that does not recognise a bone from one that only doubts it; for every known landmark its slot,
    presence probability and whether it is in the image (the presence decision at every threshold);
    the number of images."""

    slot: np.ndarray
    error_px: np.ndarray
    sigma_px: np.ndarray
    true_positives: np.ndarray
    false_positives: np.ndarray
    false_negatives: np.ndarray
    shown_slot: np.ndarray
    shown_error_px: np.ndarray
    known_slot: np.ndarray
    known_probability: np.ndarray
    known_visible: np.ndarray
    images: int


@torch.no_grad()
def landmark_outcomes(model: LandmarkNet, samples: LandmarkSamples, device: torch.device, batch_size: int = 8,
                      presence_threshold: float = 0.5) -> LandmarkOutcomes:
    """Run ``model`` over ``samples`` once and keep what every figure needs (:func:`outcome_figures`)."""
    model.eval()
    slots, errors, sigmas, shown_slots, shown_errors, known_slots, probabilities, in_image = ([] for _ in range(8))
    counts = np.zeros((3, model.landmark_count), int)
    for start in range(0, len(samples), batch_size):
        batch = batch_of(samples, range(start, min(start + batch_size, len(samples))), device)
        prediction = model(batch["image"])
        probability = torch.sigmoid(prediction["presence_logits"])
        found = probability >= presence_threshold
        visible, known = batch["visible"] & batch["known"], batch["known"]
        for row, decided in enumerate((found & visible, found & ~visible & known, ~found & visible)):
            counts[row] += decided.sum(dim=0).cpu().numpy()
        error = torch.linalg.norm(prediction["uv_px"] - batch["uv_px"], dim=-1)
        scored = visible & found
        slots.append(scored.nonzero()[:, 1].cpu())
        errors.append(error[scored].cpu())
        sigmas.append(prediction["sigma_px"][scored].cpu())
        shown_slots.append(visible.nonzero()[:, 1].cpu())
        shown_errors.append(error[visible].cpu())
        known_slots.append(known.nonzero()[:, 1].cpu())
        probabilities.append(probability[known].cpu())
        in_image.append(visible[known].cpu())
    model.train()
    joined = [torch.cat(parts).numpy() if parts else np.zeros(0)
              for parts in (slots, errors, sigmas, shown_slots, shown_errors, known_slots, probabilities, in_image)]
    return LandmarkOutcomes(*joined[:3], *counts, *joined[3:], len(samples))


def outcome_figures(outcomes: LandmarkOutcomes, slots: np.ndarray | None = None) -> dict:
    """Error (px), σ calibration, presence precision and recall, pooled over the landmark slots
    ``slots`` selects (bool (L,); None: all); the heatmap's median error over every visible
    landmark, found or not; the landmarks found where they are not in the image, per image; and
    the presence probability's ROC AUC over the known landmarks (MONAI's ``compute_roc_auc``: how
    well it tells a landmark in the image from one that is not, whatever the threshold; 0.5 is
    chance, NaN where only one of the two occurs)."""
    chosen = np.ones(len(outcomes.true_positives), bool) if slots is None else np.asarray(slots, bool)
    scored = chosen[outcomes.slot.astype(int)] if len(outcomes.slot) else np.zeros(0, bool)
    error, sigma = outcomes.error_px[scored], outcomes.sigma_px[scored]
    true_pos, false_pos, false_neg = (int(counts[chosen].sum()) for counts in (
        outcomes.true_positives, outcomes.false_positives, outcomes.false_negatives))
    ratio = lambda a, b: float(a / b) if b else math.nan  # noqa: E731
    shown = chosen[outcomes.shown_slot.astype(int)] if len(outcomes.shown_slot) else np.zeros(0, bool)
    known = chosen[outcomes.known_slot.astype(int)] if len(outcomes.known_slot) else np.zeros(0, bool)
    truth = outcomes.known_visible[known].astype(bool)
    roc_auc = (float(compute_roc_auc(torch.from_numpy(outcomes.known_probability[known]).float(),
                                     torch.from_numpy(truth).float()))
               if 0 < truth.sum() < len(truth) else math.nan)
    return {"landmarks_scored": int(len(error)),
            "heatmap_median_error_px": float(np.median(outcomes.shown_error_px[shown])) if shown.any() else math.nan,
            "invented_per_image": ratio(false_pos, outcomes.images),
            "median_error_px": float(np.median(error)) if len(error) else math.nan,
            "mean_error_px": float(np.mean(error)) if len(error) else math.nan,
            "median_sigma_px": float(np.median(sigma)) if len(sigma) else math.nan,
            "within_1_sigma": float(np.mean(error <= sigma)) if len(error) else math.nan,
            "within_2_sigma": float(np.mean(error <= 2 * sigma)) if len(error) else math.nan,
            "expected_within_1_sigma": WITHIN_1_SIGMA, "expected_within_2_sigma": WITHIN_2_SIGMA,
            "presence_precision": ratio(true_pos, true_pos + false_pos),
            "presence_recall": ratio(true_pos, true_pos + false_neg),
            "presence_roc_auc": roc_auc}


def evaluate_landmarks(model: LandmarkNet, samples: LandmarkSamples, device: torch.device, batch_size: int = 8,
                       presence_threshold: float = 0.5) -> dict:
    """Pooled validation figures (:func:`outcome_figures` of every landmark)."""
    return outcome_figures(landmark_outcomes(model, samples, device, batch_size, presence_threshold))


def calibrate_sigma(model: LandmarkNet, samples: LandmarkSamples, device: torch.device, batch_size: int = 8,
                    presence_threshold: float = 0.5) -> float:
    """The factor that makes σ calibrated on ``samples`` (views of patients the network never saw):
    the 39.3 % quantile of |Δ|/σ over the visible landmarks found, so that a 2D Gaussian's share
    of the true points lies within 1σ. Why: trained σ follows the training views' errors, and on
    new patients the errors are larger. A quantile, not the maximum-likelihood scale, so that a
    few landmarks put on the wrong vertebra do not widen every σ. 1.0 without such landmarks."""
    outcomes = landmark_outcomes(model, samples, device, batch_size, presence_threshold)
    ratios = outcomes.error_px / outcomes.sigma_px
    return float(np.quantile(ratios, WITHIN_1_SIGMA)) if len(ratios) else 1.0


def plot_landmark_curves(history_jsonl: Path, png: Path) -> None:
    """Three panels against samples seen: training loss; validation median error and median σ
    (px); the fractions within 1σ and 2σ beside their Gaussian values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(history_jsonl).read_text().splitlines() if line.strip()]
    seen = [row["samples_seen"] / 1000 for row in rows]
    validation = [row.get("validation", {}) for row in rows]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.4), constrained_layout=True)
    axes[0].plot(seen, [row["train_loss"] for row in rows], marker="o", markersize=3)
    axes[0].set_title("training loss (β-NLL + presence + heatmap)", fontsize=10)
    for key, label in (("median_error_px", "median error"), ("median_sigma_px", "median σ")):
        axes[1].plot(seen, [v.get(key, math.nan) for v in validation], marker="o", markersize=3, label=label)
    axes[1].set_title("validation landmarks (px)", fontsize=10)
    for key, expected, label in (("within_1_sigma", WITHIN_1_SIGMA, "within 1σ"),
                                 ("within_2_sigma", WITHIN_2_SIGMA, "within 2σ")):
        line, = axes[2].plot(seen, [v.get(key, math.nan) for v in validation], marker="o", markersize=3, label=label)
        axes[2].axhline(expected, color=line.get_color(), linestyle=":", linewidth=1)
    axes[2].set_ylim(0, 1)
    axes[2].set_title("σ calibration (dotted: a calibrated Gaussian)", fontsize=10)
    for axis in axes:
        axis.set_xlabel("samples seen (thousands)")
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    temporary = png.with_name(f".{png.name}.partial.png")
    figure.savefig(temporary, dpi=90)
    plt.close(figure)
    temporary.replace(png)


def train_landmarks(dataset_dir, out_dir, config: LandmarkTrainConfig, device: str = "auto",
                    commands: list[str] | None = None, validation_dir=None, progress: bool = True) -> dict:
    """Train, validate and checkpoint every epoch, and write the landmark bundle into ``out_dir``."""
    from .landmark_bundle import write_landmark_bundle

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    torch.manual_seed(config.seed)
    out_dir = Path(out_dir)
    training_dir = out_dir / "training"
    training_dir.mkdir(parents=True, exist_ok=True)
    train_set = SyntheticXrayDataset(dataset_dir, "train", jitter=IntensityJitter() if config.jitter else None,
                                     seed=config.seed)
    validation = SyntheticXrayDataset(validation_dir or dataset_dir, "validation")
    landmarks = landmark_vocabulary(train_set)
    if not len(train_set) or not landmarks:
        raise XreconInputError(f"{dataset_dir} has no training samples with landmarks (make the dataset with "
                               "landmarks.mrk.json beside each case's CT, or --landmarks-dir)")
    samples, checks = LandmarkSamples(train_set, landmarks), LandmarkSamples(validation, landmarks)
    model = LandmarkNet(len(landmarks), config.features, config.downsample).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    per_epoch = config.steps_per_epoch or max(1, len(samples) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate, total_steps=config.epochs * per_epoch)
    start_epoch, seconds_before = _resume(training_dir / "checkpoint.pt", config, model, optimiser, schedule)
    started = time.perf_counter() - seconds_before
    history_path = training_dir / "metrics.jsonl"
    metrics: dict = {}
    for epoch in range(start_epoch, config.epochs):
        order = global_order(len(samples), config.seed, epoch)
        steps = range(per_epoch)
        if progress:
            from tqdm import tqdm

            steps = tqdm(steps, desc=f"epoch {epoch + 1}/{config.epochs}", unit="step", dynamic_ncols=True)
        losses = {"loss": [], "nll": [], "heatmap": []}
        for step in steps:
            indices = [order[(step * config.batch_size + i) % len(order)] for i in range(config.batch_size)]
            batch = batch_of(samples, indices, device)
            parts = landmark_loss(model(batch["image"]), batch["uv_px"], batch["visible"], batch["known"],
                                  config.presence_weight, config.nll_beta, config.heatmap_weight,
                                  config.heatmap_sigma_px, config.downsample)
            optimiser.zero_grad(set_to_none=True)
            parts["loss"].backward()
            optimiser.step()
            schedule.step()
            for key, values in losses.items():
                values.append(parts[key].item())
        metrics = {"epoch": epoch + 1, "train_loss": float(np.mean(losses["loss"])),
                   "train_nll": float(np.mean(losses["nll"])), "train_heatmap": float(np.mean(losses["heatmap"])),
                   "seconds": time.perf_counter() - started,
                   "samples_seen": (epoch + 1) * per_epoch * config.batch_size}
        if len(checks):
            metrics["validation"] = evaluate_landmarks(model, checks, device)
        with history_path.open("a") as stream:
            stream.write(json.dumps(metrics) + "\n")
        plot_landmark_curves(history_path, training_dir / "curves.png")
        _save_checkpoint(training_dir / "checkpoint.pt", config, model, optimiser, schedule, epoch + 1,
                         metrics["seconds"])
    if metrics.get("epoch") != config.epochs:  # nothing left to train: the figures of the last epoch
        rows = [json.loads(line) for line in history_path.read_text().splitlines() if line.strip()]
        metrics = rows[-1] if rows else {}
    calibration = {}
    if len(checks):  # σ calibrated on the validation views: patients the training never saw
        model.sigma_scale = calibrate_sigma(model, checks, device)
        calibration = {"sigma_scale": model.sigma_scale, "dataset": str(validation_dir),
                       "validation": evaluate_landmarks(model, checks, device)}
    training = {"dataset": str(dataset_dir), "dataset_command": train_set.header["command"],
                "validation_dataset": str(validation_dir or dataset_dir),
                "validation_command": validation.header["command"], "config": dataclasses.asdict(config),
                "commands": commands or [], "train_samples": len(train_set), "validation_samples": len(validation),
                "device": str(device), "seconds": metrics.get("seconds"), "samples_seen": metrics.get("samples_seen")}
    image_size = tuple(train_set.header["settings"]["base_view"]["size_px"])
    write_landmark_bundle(out_dir, model, landmarks, image_size, config,
                          {"geometry": train_set.header["settings"]["base_view"], "training": training,
                           "validation": metrics.get("validation", {}), "sigma_calibration": calibration})
    if (training_dir / "curves.png").exists():
        import shutil

        shutil.copyfile(training_dir / "curves.png", out_dir / "docs" / "training_curves.png")
    return metrics
