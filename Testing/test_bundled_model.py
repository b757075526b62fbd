"""The bundled depth model loads safely, finds the bones on a plain AP view of a training patient,
and does not report a pelvis on a view of the chest."""

from pathlib import Path

import numpy as np
import pytest
import torch

from SingleImageReconLib.networks.depth_bundle import load_bundle
from SingleImageReconLib.networks.depth_network import reference_depth_mm
from SyntheticDataGenLib.augmentation.ladder import PRESETS
from SyntheticDataGenLib.dataset.torch_dataset import SyntheticXrayDataset
from SyntheticDataGenLib.dataset.generation import BaseView, CaseSource, GenerationSettings, generate_dataset
from SyntheticDataGenLib.cases.sample_data import resources_dir, sample_case

BUNDLE = resources_dir() / "Models" / "xrecon-depth-ap256"


def test_bundled_model_metadata_and_size():
    model, metadata = load_bundle(BUNDLE)
    assert (BUNDLE / "models" / "model.safetensors").stat().st_size < 20e6
    assert metadata["xrecon"]["geometry"]["size_px"] == [256, 256] and metadata["xrecon"]["geometry"]["preset"] == "ap"
    training = metadata["xrecon"]["training"]
    assert "lumbar-tptbox" in " ".join(training["validation_command"]), "held out, on record"
    assert "lumbar-tptbox" not in " ".join(training["dataset_command"]), "never trained on"
    assert sum(p.numel() for p in model.parameters()) > 1e6


def _plain_ap_view(case: str, structures: list[str], folder: Path):
    files = sample_case(case)
    source = CaseSource(case, files.ct_path, files.labels_path, files.table_path, "train")
    generate_dataset(folder, [source], GenerationSettings(structures, 1, 0, BaseView(), PRESETS["none"], "none"))
    return SyntheticXrayDataset(folder)[0]


def _predict(model, item) -> dict:
    with torch.no_grad():
        return model(item["image"][None], torch.tensor([reference_depth_mm(item["geometry"])]))


@pytest.mark.xfail(strict=True, reason="issue 10: the CPU-trained bundle's hip and femur masks are poor (2D Dice "
                   "0.20-0.23 and 0.00 on new views; femurs often not found); passing this means the bar moved, "
                   "drop the mark")
def test_bundled_model_finds_the_hips_and_femurs_on_an_ap_view(tmp_path: Path):
    model, metadata = load_bundle(BUNDLE)
    item = _plain_ap_view("abdomen-pelvis", metadata["xrecon"]["structures"], tmp_path)
    out = _predict(model, item)
    predicted = (out["mask_logits"][0] > 0).numpy()
    truth = item["masks"].numpy() > 0.5
    for name in ("hip_left", "hip_right", "femur_left", "femur_right"):
        channel = metadata["xrecon"]["structures"].index(name)
        dice = 2 * (predicted[channel] & truth[channel]).sum() / (predicted[channel].sum() + truth[channel].sum())
        assert dice > 0.5, f"{name}: Dice {dice:.2f}"
        assert torch.sigmoid(out["presence_logits"][0, channel]) > 0.5, f"{name} not found"
    assert np.all(out["back_mm"].numpy() >= out["front_mm"].numpy())


def test_bundled_model_reports_no_pelvis_on_a_chest_view(tmp_path: Path):
    model, metadata = load_bundle(BUNDLE)
    structures = metadata["xrecon"]["structures"]
    presence = torch.sigmoid(_predict(model, _plain_ap_view("chest", structures, tmp_path))["presence_logits"][0])
    for name in ("sacrum", "hip_left", "hip_right", "femur_left", "femur_right"):
        assert presence[structures.index(name)] < 0.5, f"{name} found in a chest view ({presence[structures.index(name)]:.2f})"


def test_bundled_model_puts_the_vertebrae_in_order_down_the_column(tmp_path: Path):
    # the chain's level map must run one way along the spine: each level found lies below the
    # one above it, as the true masks do (image rows grow in the same direction for both)
    model, metadata = load_bundle(BUNDLE)
    structures = metadata["xrecon"]["structures"]
    assert metadata["xrecon"]["chains"] == [[s for s in structures if s.startswith("vertebrae_")]]
    item = _plain_ap_view("chest", structures, tmp_path)
    predicted = (_predict(model, item)["mask_logits"][0] > 0).numpy()
    truth = item["masks"].numpy() > 0.5

    def row(mask):
        return np.nonzero(mask)[0].mean()

    shown = [i for i, name in enumerate(structures) if name.startswith("vertebrae_") and truth[i].sum() >= 16
             and predicted[i].sum() >= 16]
    assert len(shown) >= 8, "the chest view shows most of the thoracic spine"
    direction = np.sign(row(truth[shown[-1]]) - row(truth[shown[0]]))
    rows = [row(predicted[i]) for i in shown]
    assert all(direction * (below - above) > 0 for above, below in zip(rows, rows[1:])), rows
