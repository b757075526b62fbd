"""The vertebral chain: vertebrae share a column mask and depths and are told apart by a level map."""

import pytest
import torch

from SingleImageReconLib.networks.depth_bundle import load_bundle, write_bundle, bundle_metadata
from SingleImageReconLib.networks.depth_network import DepthNet, output_channels
from SingleImageReconLib.networks.depth_training import TrainConfig, chain_targets, per_sample_loss, pooled_targets
from SingleImageReconLib.networks.losses import MaskLoss
from SingleImageReconLib.reconstruction.vertebral_chain import vertebra_rank, vertebral_chain


def test_the_chain_runs_head_to_foot_across_regions():
    names = ["sacrum", "vertebrae_L1", "vertebrae_T12", "vertebrae_C7", "femur_left", "vertebrae_T2"]
    assert vertebral_chain(names) == [3, 5, 2, 1]
    assert vertebra_rank("vertebrae_C1") == 0 and vertebra_rank("vertebrae_T1") == 7 and vertebra_rank("vertebrae_L1") == 19
    assert vertebral_chain(["vertebrae_L1", "femur_left"]) == [], "one vertebra is no chain"
    assert vertebra_rank("rib_left_1") is None


class _Fixed(torch.nn.Module):
    """Stands in for the U-Net: always returns the same output maps."""

    def __init__(self, maps):
        super().__init__()
        self.maps = maps

    def forward(self, image):
        return self.maps.expand(len(image), -1, -1, -1)


def test_each_level_is_the_column_where_the_level_map_rounds_to_it():
    # structures: T1, T2 (a chain) and a femur; units: femur, then the chain
    model = DepthNet(3, downsample=1, chains=[[0, 1]])
    channels = output_channels(3, [[0, 1]])
    assert channels == 3 * 2 + 1 + 3
    maps = torch.zeros(1, channels, 4, 4)
    maps[0, 1, :, :2] = 5.0  # chain column logit: the left half
    maps[0, 1, :, 2:] = -5.0
    maps[0, 3] = 0.2  # chain front offset: 20 mm behind the isocentre
    maps[0, 6, :2] = -0.5  # raw level: level 0 (T1) in the top half, 1 (T2) in the bottom
    maps[0, 6, 2:] = 0.5
    model.unet = _Fixed(maps)
    out = model(torch.zeros(1, 1, 4, 4), torch.tensor([900.0]))
    t1, t2 = out["mask_logits"][0, 0] > 0, out["mask_logits"][0, 1] > 0
    assert t1[:2, :2].all() and not t1[2:].any() and not t1[:, 2:].any()
    assert t2[2:, :2].all() and not t2[:2].any() and not t2[:, 2:].any()
    torch.testing.assert_close(out["front_mm"][0, 0], torch.full((4, 4), 920.0))
    torch.testing.assert_close(out["front_mm"][0, 1], out["front_mm"][0, 0])
    torch.testing.assert_close(out["level"][0, 0, 0, 0], torch.tensor(0.0))
    assert out["chain_mask_logits"].shape == (1, 1, 4, 4) and out["presence_logits"].shape == (1, 3)


def test_a_model_without_chains_keeps_the_per_structure_layout():
    assert output_channels(5) == 4 * 5
    with pytest.raises(ValueError, match="distinct structures"):
        DepthNet(3, chains=[[0, 1], [1, 2]])


def test_chain_targets_leave_overlaps_undefined():
    masks = torch.zeros(1, 3, 2, 3)
    masks[0, 0, 0, :2] = 1  # first level
    masks[0, 2, 0, 1:] = 1  # second level (chain [0, 2]), overlapping the first at (0, 1)
    column, level, defined = chain_targets(masks, [0, 2])
    assert column[0, 0].tolist() == [[1, 1, 1], [0, 0, 0]]
    assert defined[0, 0].tolist() == [[True, False, True], [False, False, False]]
    assert level[0, 0, 0, 0] == 0 and level[0, 0, 0, 2] == 1


def test_pooled_targets_average_depth_over_the_mask_only():
    masks = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])
    front = torch.tensor([[[[900.0, 910.0], [920.0, 0.0]]]])
    pooled = pooled_targets({"masks": masks, "front_mm": front, "back_mm": front + 10}, 2)
    assert pooled["masks"].item() == 1.0
    assert pooled["front_mm"].item() == pytest.approx(910.0) and pooled["back_mm"].item() == pytest.approx(920.0)


def test_the_level_loss_counts_one_level_of_error_as_one():
    model = DepthNet(2, features=(4, 4, 8, 8, 16, 4), chains=[[0, 1]])
    image = torch.rand(1, 1, 32, 32)
    masks = torch.zeros(1, 2, 32, 32)
    masks[0, 0, :16, 8:24] = 1
    masks[0, 1, 16:, 8:24] = 1
    batch = {"image": image, "masks": masks, "front_mm": masks * 900, "back_mm": masks * 930,
             "reference_mm": torch.tensor([900.0])}
    config = TrainConfig(min_visible_px=1)
    prediction = model(image, batch["reference_mm"])
    base = per_sample_loss(prediction, batch, config, MaskLoss(), [[0, 1]])
    shifted = dict(prediction, level=prediction["level"] + 1.0)  # one level further down wherever it is
    # where the prediction already lies below the truth, the error grows by 1; above, it may shrink
    error = (prediction["level"][0, 0] - torch.where(masks[0, 1] > 0, 1.0, 0.0))[masks[0].amax(0) > 0]
    expected = ((error + 1).abs().mean() - error.abs().mean()) * config.level_weight
    changed = per_sample_loss(shifted, batch, config, MaskLoss(), [[0, 1]])
    torch.testing.assert_close(changed - base, expected.reshape(1), rtol=1e-5, atol=1e-6)


def test_a_chained_bundle_loads_and_predicts_the_same(tmp_path):
    names = ["vertebrae_T12", "vertebrae_L1", "sacrum"]
    model = DepthNet(3, features=(4, 4, 8, 8, 16, 4), downsample=2, chains=[vertebral_chain(names)]).eval()
    write_bundle(tmp_path, model, bundle_metadata(names, model.features, (64, 64), {}, downsample=2,
                                                  chains=model.chains))
    loaded, metadata = load_bundle(tmp_path)
    assert metadata["xrecon"]["chains"] == [["vertebrae_T12", "vertebrae_L1"]]
    image, reference = torch.rand(1, 1, 64, 64), torch.tensor([900.0])
    with torch.no_grad():
        torch.testing.assert_close(loaded(image, reference)["mask_logits"], model(image, reference)["mask_logits"])


def test_a_bundle_of_the_previous_format_loads_as_chainless(tmp_path):
    import json

    model = DepthNet(2, features=(4, 4, 8, 8, 16, 4)).eval()
    write_bundle(tmp_path, model, bundle_metadata(["vertebrae_L1", "vertebrae_L2"], model.features, (32, 32), {}))
    path = tmp_path / "configs" / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["xrecon"]["format"] = "xrecon-depth/2"  # written before chains existed: no "chains" key
    del metadata["xrecon"]["chains"]
    path.write_text(json.dumps(metadata))
    loaded, _ = load_bundle(tmp_path)
    assert loaded.chains == [] and loaded.unet.final_conv.out_channels == 4 * 2
