"""The landmark network: soft-argmax geometry, the Gaussian NLL, training on a tiny set, the bundle."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import xrecon_in_process
from SingleImageReconLib.networks.landmark_bundle import load_landmark_bundle
from SingleImageReconLib.networks.landmark_network import LandmarkNet, heatmap_cross_entropy, landmark_loss


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


def test_beta_nll_keeps_the_position_gradient_and_the_sigma_optimum():
    """Plain NLL: a landmark's position gradient |Δ|/σ² fades as its σ grows (what let the first
    bundle's σ run away); with β = 1 two landmarks with the same error get the same gradient
    whatever their σ; the σ that minimises the loss stays |Δ|/√2 per axis."""
    def position_gradients(beta):
        uv = torch.tensor([[[13.0, 24.0], [13.0, 24.0]]], requires_grad=True)
        prediction = {"uv_px": uv, "sigma_px": torch.tensor([[4.0, 40.0]]), "presence_logits": torch.zeros(1, 2)}
        landmark_loss(prediction, torch.tensor([[[10.0, 20.0], [10.0, 20.0]]]), torch.ones(1, 2, dtype=bool),
                      torch.ones(1, 2, dtype=bool), nll_beta=beta)["nll"].backward()
        return uv.grad[0].norm(dim=-1).tolist()

    narrow, wide = position_gradients(0.0)
    assert wide == pytest.approx(narrow / 100, rel=1e-5)  # fades with σ²
    narrow, wide = position_gradients(1.0)
    assert wide == pytest.approx(narrow, rel=1e-5)
    narrow, wide = position_gradients(0.5)
    assert wide == pytest.approx(narrow / 10, rel=1e-5)

    def sigma_gradient(sigma, beta):
        s = torch.tensor([[sigma]], requires_grad=True)
        prediction = {"uv_px": torch.tensor([[[13.0, 24.0]]]), "sigma_px": s, "presence_logits": torch.zeros(1, 1)}
        landmark_loss(prediction, torch.tensor([[[10.0, 20.0]]]), torch.ones(1, 1, dtype=bool),
                      torch.ones(1, 1, dtype=bool), nll_beta=beta)["nll"].backward()
        return s.grad.item()

    optimum = 5.0 / math.sqrt(2.0)  # |Δ|² / 2 = σ² per axis
    for beta in (0.0, 0.5, 1.0):
        assert sigma_gradient(optimum * 0.9, beta) < 0 < sigma_gradient(optimum * 1.1, beta)


def test_sigma_does_not_steer_the_heatmap():
    """σ is read under the heatmap with p held constant: the NLL's σ part moves no heatmap logit."""
    model = LandmarkNet(1, features=(4, 4, 4, 4, 4, 4), downsample=1)
    maps = torch.zeros(1, 3, 8, 8, requires_grad=True)
    model.unet.forward = lambda x: maps
    out = model(torch.zeros(1, 1, 8, 8))
    out["sigma_px"].sum().backward()
    assert maps.grad[0, 0].abs().max() == 0 and maps.grad[0, 1].abs().max() > 0


def test_heatmap_cross_entropy_is_least_at_the_true_point():
    """The KL from the target Gaussian is 0 for p = target, and grows as p's peak moves away."""
    true_uv = torch.tensor([[21.5, 9.5]])  # full-size px; pooled by 2: column 10.5, row 4.5
    rows, columns = torch.meshgrid(torch.arange(16.0), torch.arange(32.0), indexing="ij")

    def log_p(u_small, v_small, sigma_small=2.0):
        logits = -0.5 * (((columns - u_small) / sigma_small) ** 2 + ((rows - v_small) / sigma_small) ** 2)
        return torch.log_softmax(logits.reshape(-1), dim=0).reshape(1, 16, 32)

    assert heatmap_cross_entropy(log_p(10.5, 4.5), true_uv, 2, 4.0).mean().item() == pytest.approx(0.0, abs=1e-5)
    losses = [heatmap_cross_entropy(log_p(10.5 + shift, 4.5), true_uv, 2, 4.0).mean().item() for shift in (0, 1, 3, 8)]
    assert losses == sorted(losses) and losses[-1] > 5.0
    # the network's own output feeds it: a peak there gives a low loss, a peak elsewhere a high one
    model = LandmarkNet(1, features=(4, 4, 4, 4, 4, 4), downsample=2)
    for (row, column), low in (((4, 10), True), ((12, 30), False)):
        maps = torch.full((1, 3, 16, 32), -30.0)
        maps[0, 0] = -0.5 * ((columns - column) ** 2 + (rows - row) ** 2) / 4.0
        model.unet.forward = lambda x, maps=maps: maps
        out = model(torch.zeros(1, 1, 32, 64))
        parts = landmark_loss(out, true_uv[None], torch.ones(1, 1, dtype=bool), torch.ones(1, 1, dtype=bool),
                              heatmap_weight=1.0, downsample=2)
        assert (parts["heatmap"].item() < 0.5) == low


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


@pytest.fixture
def torch_threads():
    """Puts torch's thread count back after a test that ran ``xrecon train --threads`` in-process."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_train_landmarks_on_a_tiny_set_and_load_the_bundle(tmp_path, capfd, torch_threads):
    dataset = tmp_path / "set"
    status, _, err = xrecon_in_process(capfd, "generate", "--case", "abdomen-pelvis", "--case", "chest", "--holdout",
                                       "chest", "--views", "4", "--seed", "3", "--preset", "light",
                                       "--detector-size-px", "64", "64", "--pixel-spacing-mm", "6", "6",
                                       "--progress", "none", "--out", dataset)
    assert status == 0, err
    bundle = tmp_path / "bundle"
    status, out, err = xrecon_in_process(capfd, "train", "--task", "landmarks", "--dataset", dataset, "--out", bundle,
                                         "--set", "epochs=2", "--set", "batch_size=2", "--set",
                                         "features=[8,8,8,8,8,8]", "--device", "cpu", "--threads", "1")
    assert status == 0, err
    assert json.loads(out)["epoch"] == 2 and torch.get_num_threads() == 1
    model, metadata = load_landmark_bundle(bundle)
    assert 0.0 <= metadata["xrecon"]["validation"]["within_2_sigma"] <= 1.0
    # σ calibrated on the held-out views: by construction a Gaussian's share lies within 1σ there
    calibration = metadata["xrecon"]["sigma_calibration"]
    assert model.sigma_scale == calibration["sigma_scale"] > 0
    assert calibration["validation"]["within_1_sigma"] == pytest.approx(0.393, abs=0.05)
    labels = metadata["xrecon"]["landmarks"]
    assert "vertebrae_L3/spinous_process_tip" in labels and "hip_left/acetabular_centre" in labels
    with torch.no_grad():
        out = model(torch.rand(1, 1, 64, 64))
    assert out["uv_px"].shape == (1, len(labels), 2) and torch.isfinite(out["sigma_px"]).all()
    # a second run of the same command resumes (nothing left to do) and gives the same weights
    before = (bundle / "models" / "model.safetensors").read_bytes()
    status, _, err = xrecon_in_process(capfd, "train", "--task", "landmarks", "--dataset", dataset, "--out", bundle,
                                       "--set", "epochs=2", "--set", "batch_size=2", "--set",
                                       "features=[8,8,8,8,8,8]", "--device", "cpu", "--threads", "1")
    assert status == 0, err
    assert (bundle / "models" / "model.safetensors").read_bytes() == before
    again = load_landmark_bundle(bundle)[1]["xrecon"]
    assert again["validation"] == metadata["xrecon"]["validation"] and again["sigma_calibration"] == calibration
    # the benchmark reads the bundle twice on the held-out views: the second is 1.00 of the first
    status, out, err = xrecon_in_process(capfd, "bench", "landmarks", "--bundle", bundle, "--bundle", bundle,
                                         "--dataset", f"{dataset}:validation")
    assert status == 0, err
    pooled = [line for line in out.splitlines() if line.strip().startswith("all ")]
    assert len(pooled) == 2 and "(1.00 of the first)" in pooled[1] and "presence precision" in pooled[0]
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


def test_calibrate_sigma_scales_sigma_to_a_gaussians_share_within_one_sigma():
    """Errors of 10 px with σ 2 px: the 39.3 % quantile of |Δ|/σ is 5, so σ becomes 10 px."""
    from SingleImageReconLib.networks.landmark_training import calibrate_sigma

    class Samples:
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return {"image": torch.zeros(1, 8, 8), "uv_px": torch.tensor([[3.5 + 10.0, 3.5]]),
                    "visible": torch.tensor([True]), "known": torch.tensor([True])}

    model = LandmarkNet(1, features=(4, 4, 4, 4, 4, 4), downsample=1)
    maps = torch.full((1, 3, 8, 8), -30.0)
    maps[0, 0, 3:5, 3:5] = 30.0  # the peak at (3.5, 3.5)
    maps[0, 1] = math.log(math.expm1(2.0 - 0.5))  # σ = softplus(s) + 0.5 = 2 px
    maps[0, 2] = 5.0  # present
    model.unet.forward = lambda x: maps.expand(x.shape[0], -1, -1, -1)
    assert model(torch.zeros(1, 1, 8, 8))["sigma_px"].item() == pytest.approx(2.0, rel=1e-4)
    assert calibrate_sigma(model, Samples(), torch.device("cpu")) == pytest.approx(5.0, rel=1e-3)


def test_outcomes_tell_where_the_heatmap_puts_an_unfound_landmark_and_count_invented_ones():
    """Landmark 0 is in the image, 10 px from the heatmap's peak, but not found; landmark 1 is of a
    bone the case lacks, and found: nothing is scored, the heatmap is 10 px off, one invented an
    image, and the presence ROC AUC is 0 (1 once the presence maps are swapped)."""
    from SingleImageReconLib.networks.landmark_training import landmark_outcomes, outcome_figures

    class Samples:
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return {"image": torch.zeros(1, 8, 8), "uv_px": torch.tensor([[3.5 + 10.0, 3.5], [0.0, 0.0]]),
                    "visible": torch.tensor([True, False]), "known": torch.tensor([True, True])}

    model = LandmarkNet(2, features=(4, 4, 4, 4, 4, 4), downsample=1)
    maps = torch.full((1, 6, 8, 8), -30.0)
    maps[0, 0:2, 3:5, 3:5] = 30.0  # both peaks at (3.5, 3.5)
    maps[0, 4] = -5.0  # landmark 0 absent ...
    maps[0, 5] = 5.0  # ... landmark 1 present
    model.unet.forward = lambda x: maps.expand(x.shape[0], -1, -1, -1)
    figures = outcome_figures(landmark_outcomes(model, Samples(), torch.device("cpu")))
    assert figures["landmarks_scored"] == 0 and math.isnan(figures["median_error_px"])
    assert figures["heatmap_median_error_px"] == pytest.approx(10.0, abs=1e-3)
    assert figures["invented_per_image"] == 1.0 and figures["presence_recall"] == 0.0
    # the absent landmark is the likelier: presence ranks them the wrong way round
    assert figures["presence_roc_auc"] == 0.0
    maps[0, 4], maps[0, 5] = 5.0, -5.0
    assert outcome_figures(landmark_outcomes(model, Samples(), torch.device("cpu")))["presence_roc_auc"] == 1.0
    # one landmark alone (both classes are needed): undefined, not a number that looks like a result
    assert math.isnan(outcome_figures(landmark_outcomes(model, Samples(), torch.device("cpu")),
                                      np.array([True, False]))["presence_roc_auc"])


def test_the_landmarks_of_bones_a_case_lacks_are_known_absent(tmp_path, capfd):
    """A chest has no femur: its images teach presence 0 for the femur's landmarks, while a bone
    the case has but a landmark it cannot place (outside the scan) stays unknown."""
    from SingleImageReconLib.networks.landmark_training import LandmarkSamples
    from SyntheticDataGenLib.dataset.torch_dataset import SyntheticXrayDataset

    dataset = tmp_path / "set"
    status, _, err = xrecon_in_process(capfd, "generate", "--case", "abdomen-pelvis", "--case", "chest", "--views", "2",
                                       "--seed", "3", "--preset", "none", "--detector-size-px", "32", "32",
                                       "--pixel-spacing-mm", "12", "12", "--progress", "none", "--out", dataset)
    assert status == 0, err
    data = SyntheticXrayDataset(dataset, "all")
    labels = sorted({label for row in data.rows for label in row["landmark_labels"]})
    samples = LandmarkSamples(data, labels)
    femur = [i for i, label in enumerate(labels) if label.startswith("femur_left/")]
    for item, row in enumerate(data.rows):
        sample = samples[item]
        placed = set(row["landmark_labels"])
        for i in femur:
            if row["case"] == "chest":
                assert labels[i] not in placed and sample["known"][i] and not sample["visible"][i]
            else:
                assert labels[i] in placed
        unplaced = [labels.index(label) for label, known in zip(row["landmark_labels"],
                                                                data.arrays(item, ("landmarks_known",))["landmarks_known"])
                    if not known]
        assert not sample["known"][unplaced].any()
    prediction = {"uv_px": torch.zeros(1, 1, 2), "sigma_px": torch.ones(1, 1), "presence_logits": torch.tensor([[4.0]]),
                  "heatmap_logits": torch.zeros(1, 1, 4, 4)}
    absent = landmark_loss(prediction, torch.zeros(1, 1, 2), torch.tensor([[False]]), torch.tensor([[True]]))
    assert absent["presence"] > 3.0 and absent["nll"] == 0  # finding an absent bone costs; it has no position
