"""The bundled depth model loads safely and finds the bones on a plain AP view of a training patient."""

from pathlib import Path

import numpy as np
import torch

from SingleImageReconLib.bundle import load_bundle
from SingleImageReconLib.network import reference_depth_mm
from SyntheticDataGenLib.augmentation import PRESETS
from SyntheticDataGenLib.dataset import SyntheticXrayDataset
from SyntheticDataGenLib.generation import BaseView, CaseSource, GenerationSettings, generate_dataset
from SyntheticDataGenLib.sample_data import resources_dir, sample_case

BUNDLE = resources_dir() / "Models" / "xrecon-depth-ap256"


def test_bundled_model_metadata_and_size():
    model, metadata = load_bundle(BUNDLE)
    assert (BUNDLE / "models" / "model.safetensors").stat().st_size < 20e6
    assert metadata["xrecon"]["geometry"]["size_px"] == [256, 256] and metadata["xrecon"]["geometry"]["preset"] == "ap"
    assert "lumbar-tptbox" in " ".join(metadata["xrecon"]["training"]["dataset_command"]), "held out, on record"
    assert sum(p.numel() for p in model.parameters()) > 1e6


def test_bundled_model_finds_the_hips_and_femurs_on_an_ap_view(tmp_path: Path):
    model, metadata = load_bundle(BUNDLE)
    files = sample_case("abdomen-pelvis")
    source = CaseSource("abdomen-pelvis", files.ct_path, files.labels_path, files.table_path, "train")
    settings = GenerationSettings(metadata["xrecon"]["structures"], 1, 0, BaseView(), PRESETS["none"], "none")
    generate_dataset(tmp_path, [source], settings)
    item = SyntheticXrayDataset(tmp_path)[0]
    with torch.no_grad():
        out = model(item["image"][None], torch.tensor([reference_depth_mm(item["geometry"])]))
    predicted = (out["mask_logits"][0] > 0).numpy()
    truth = item["masks"].numpy() > 0.5
    for name in ("hip_left", "hip_right", "femur_left", "femur_right"):
        channel = metadata["xrecon"]["structures"].index(name)
        dice = 2 * (predicted[channel] & truth[channel]).sum() / (predicted[channel].sum() + truth[channel].sum())
        assert dice > 0.5, f"{name}: Dice {dice:.2f}"
    assert np.all(out["back_mm"].numpy() >= out["front_mm"].numpy())
