"""The landmark network: soft-argmax geometry, the Gaussian NLL, training on a tiny set, the bundle."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import xrecon_in_process
from SingleImageReconLib.networks.landmark_bundle import load_landmark_bundle
from SingleImageReconLib.networks.landmark_network import LandmarkNet, landmark_loss


def test_gaussian_nll_has_its_hand_computed_value():
    """|Δ| = 5 px (3, 4) and σ = 5 px: |Δ|²/(2σ²) + 2·log σ = 0.5 + 2·ln 5."""
    prediction = {"uv_px": torch.tensor([[[13.0, 24.0]]]), "sigma_px": torch.tensor([[5.0]]),
                  "presence_logits": torch.tensor([[0.0]])}
    parts = landmark_loss(prediction, torch.tensor([[[10.0, 20.0]]]), torch.tensor([[True]]), torch.tensor([[True]]))
    assert parts["nll"].item() == pytest.approx(0.5 + 2 * math.log(5.0), abs=1e-5)
    assert parts["presence"].item() == pytest.approx(math.log(2.0), abs=1e-6)  # sigmoid(0) against "visible"
    # unknown landmarks count for nothing, visible or not
    unknown = landmark_loss(prediction, torch.tensor([[[10.0, 20.0]]]), torch.tensor([[True]]), torch.tensor([[False]]))
    assert unknown["loss"].item() == 0.0


def test_nll_rewards_a_sigma_that_matches_the_error():
    errors = torch.full((1, 1, 2), 3.0)
    losses = []
    for sigma in (0.5, 3.0, 30.0):  # |Δ|² = 18: the NLL 9/σ² + 2·ln σ is least at σ = 3
        prediction = {"uv_px": errors, "sigma_px": torch.tensor([[sigma]]), "presence_logits": torch.zeros(1, 1)}
        losses.append(landmark_loss(prediction, torch.zeros(1, 1, 2), torch.ones(1, 1, dtype=bool),
                                    torch.ones(1, 1, dtype=bool))["nll"].item())
    assert losses[1] < losses[0] and losses[1] < losses[2]


def test_soft_argmax_finds_a_peak_at_full_resolution_pixels():
    model = LandmarkNet(2, features=(4, 4, 4, 4, 4, 4), downsample=2)
    maps = torch.full((1, 6, 8, 8), -30.0)
    maps[0, 0, 3, 5] = 30.0  # landmark 0 at pooled (row 3, column 5)
    maps[0, 1, 0, 0] = 30.0
    model.unet.forward = lambda x: maps
    out = model(torch.zeros(1, 1, 16, 16))
    # pooled pixel k covers full pixels 2k, 2k + 1: centre 2k + 0.5
    assert out["uv_px"][0, 0].tolist() == pytest.approx([10.5, 6.5], abs=1e-4)
    assert out["uv_px"][0, 1].tolist() == pytest.approx([0.5, 0.5], abs=1e-4)
    assert (out["sigma_px"] >= 1.0).all()  # the floor, 0.5 px at the pooled size


@pytest.mark.slow
def test_train_landmarks_on_a_tiny_set_and_load_the_bundle(tmp_path, capfd):
    dataset = tmp_path / "set"
    status, _, err = xrecon_in_process(capfd, "generate", "--case", "abdomen-pelvis", "--case", "chest", "--holdout",
                                       "chest", "--views", "4", "--seed", "3", "--preset", "light",
                                       "--detector-size-px", "64", "64", "--pixel-spacing-mm", "6", "6",
                                       "--progress", "none", "--out", dataset)
    assert status == 0, err
    bundle = tmp_path / "bundle"
    status, out, err = xrecon_in_process(capfd, "train", "--task", "landmarks", "--dataset", dataset, "--out", bundle,
                                         "--set", "epochs=2", "--set", "batch_size=2", "--set",
                                         "features=[8,8,8,8,8,8]", "--device", "cpu")
    assert status == 0, err
    assert json.loads(out)["epoch"] == 2
    model, metadata = load_landmark_bundle(bundle)
    assert 0.0 <= metadata["xrecon"]["validation"]["within_2_sigma"] <= 1.0
    labels = metadata["xrecon"]["landmarks"]
    assert "vertebrae_L3/spinous_process_tip" in labels and "hip_left/acetabular_centre" in labels
    with torch.no_grad():
        out = model(torch.rand(1, 1, 64, 64))
    assert out["uv_px"].shape == (1, len(labels), 2) and torch.isfinite(out["sigma_px"]).all()
    # a second run of the same command resumes (nothing left to do) and gives the same weights
    before = (bundle / "models" / "model.safetensors").read_bytes()
    status, _, err = xrecon_in_process(capfd, "train", "--task", "landmarks", "--dataset", dataset, "--out", bundle,
                                       "--set", "epochs=2", "--set", "batch_size=2", "--set",
                                       "features=[8,8,8,8,8,8]", "--device", "cpu")
    assert status == 0, err
    assert (bundle / "models" / "model.safetensors").read_bytes() == before
    # the landmark path of reconstruct: every bone either fitted (a closed surface) or said why not
    from SyntheticDataGenLib.cases.landmarks import read_markups_json

    render = tmp_path / "view"
    assert xrecon_in_process(capfd, "render", "--case", "abdomen-pelvis", "--detector-size-px", "96", "96",
                             "--pixel-spacing-mm", "4", "4", "--out", render)[0] == 0
    recon = tmp_path / "recon"
    status, out, err = xrecon_in_process(capfd, "reconstruct", "--method", "ssm", "--landmark-bundle", bundle,
                                         "--image", render / "drr.nrrd", "--geometry", render / "geometry.json",
                                         "--out", recon)
    assert status == 0, err
    summary = json.loads((recon / "reconstruction.json").read_text())
    assert summary["method"] == "ssm" and set(summary["found"]) | set(summary["not_found"]) == set(summary["structures"])
    for name, entry in summary["structures"].items():
        assert entry["found"] == (recon / f"{name}.vtk").is_file()
        assert entry["found"] or entry["not_found_because"]
    labels, points = read_markups_json(recon / "view1" / "landmarks.mrk.json")
    assert labels == metadata["xrecon"]["landmarks"] and points.shape == (len(labels), 3)
    # the combined method: every bone the depth network found, as a shape model fitted to its evidence
    combined = tmp_path / "combined"
    status, out, err = xrecon_in_process(capfd, "reconstruct", "--method", "combined", "--landmark-bundle", bundle,
                                         "--image", render / "drr.nrrd", "--geometry", render / "geometry.json",
                                         "--structures", "vertebrae_L3,vertebrae_L4,sacrum", "--out", combined)
    assert status == 0, err
    summary = json.loads((combined / "reconstruction.json").read_text())
    assert summary["method"] == "combined" and set(summary["structures"]) == {"vertebrae_L3", "vertebrae_L4", "sacrum"}
    for name, entry in summary["structures"].items():
        assert entry["found"] == (combined / f"{name}.vtk").is_file()
        assert entry["found"] or entry["not_found_because"]
        assert (combined / "view1" / f"mask_{name}.nrrd").is_file()  # the depth network's evidence, beside it


def test_landmark_bundle_refuses_a_depth_bundle(tmp_path):
    from SyntheticDataGenLib.errors import XreconInputError
    from SyntheticDataGenLib.cases.sample_data import resources_dir

    with pytest.raises(XreconInputError, match="not a landmark bundle"):
        load_landmark_bundle(resources_dir() / "Models" / "xrecon-depth-ap256")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "metadata.json").write_text(json.dumps({"xrecon": {"format": "xrecon-landmarks/1"}}))
    with pytest.raises(XreconInputError, match="lacks landmarks"):
        load_landmark_bundle(tmp_path)
