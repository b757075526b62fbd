"""Training: determinism, exact resume, torchrun equivalence, bundles that load safely."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import HANG_TIMEOUT_S

from SyntheticDataGenLib.augmentation.ladder import PRESETS
from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.dataset.generation import BaseView, CaseSource, GenerationSettings, generate_dataset
from SyntheticDataGenLib.cases.sample_data import sample_case
from SingleImageReconLib.networks.depth_bundle import load_bundle
from SingleImageReconLib.networks.depth_training import TrainConfig, train

TINY = dict(features=[4, 4, 8, 8, 16, 4], batch_size=4, steps_per_epoch=2, jitter=True)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dataset")
    files = sample_case("abdomen-pelvis")
    cases = [CaseSource("abdomen-pelvis", files.ct_path, files.labels_path, files.table_path, "train"),
             CaseSource("chest", *(lambda c: (c.ct_path, c.labels_path, c.table_path))(sample_case("chest")), "validation")]
    settings = GenerationSettings(["femur_left", "vertebrae_L1", "vertebrae_L2"], 6, 0, BaseView(size_px=(32, 32), pixel_spacing_mm=(12.8, 12.8)),
                                  PRESETS["light"].scaled(anatomy=0), "light")
    generate_dataset(folder, cases, settings)
    return folder


def imageio_read(path):
    from PIL import Image

    return np.asarray(Image.open(path))


def weights(folder):
    return load_file(str(folder / "models" / "model.safetensors"))


def test_same_seed_same_weights_and_resume_is_exact(dataset, tmp_path):
    config = TrainConfig(epochs=2, **TINY)
    train(dataset, tmp_path / "a", config, device="cpu", progress=False)
    train(dataset, tmp_path / "b", config, device="cpu", progress=False)
    first, second = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    # one epoch, stop, then the same two-epoch run resumes from the checkpoint
    train(dataset, tmp_path / "c", TrainConfig(epochs=2, **TINY), device="cpu", progress=False)
    interrupted = tmp_path / "d"
    stopped = TrainConfig(epochs=2, **TINY)
    _train_one_epoch_then_stop(dataset, interrupted, stopped)
    train(dataset, interrupted, stopped, device="cpu", progress=False)
    resumed = weights(interrupted)
    assert all(torch.equal(resumed[k], first[k]) for k in first)
    rows = (interrupted / "training" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("epoch,samples_seen,train_loss")
    curves = imageio_read(interrupted / "training" / "curves.png")
    assert curves.ndim == 3 and curves.shape[1] > 2 * curves.shape[0], "three panels side by side"
    assert len(np.unique(curves.reshape(-1, curves.shape[2]), axis=0)) > 20, "the curves are drawn, not blank"


def _train_one_epoch_then_stop(dataset, out, config):
    """Run epoch 1 of a 2-epoch run and stop, as an interruption would (checkpoint after epoch 1)."""
    import SingleImageReconLib.networks.depth_training as training

    original = training.global_order
    calls = []

    def stop_after_first_epoch(length, seed, epoch):
        if epoch == 1:
            calls.append(epoch)
            raise KeyboardInterrupt
        return original(length, seed, epoch)

    training.global_order = stop_after_first_epoch
    try:
        with pytest.raises(KeyboardInterrupt):
            train(dataset, out, config, device="cpu", progress=False)
    finally:
        training.global_order = original
    assert calls == [1] and (out / "training" / "checkpoint.pt").exists()


def test_bundle_loads_and_predicts_like_the_trained_model(dataset, tmp_path):
    metrics = train(dataset, tmp_path / "bundle", TrainConfig(epochs=1, **TINY), device="cpu", progress=False)
    validated = {name for name, figures in metrics["validation"].items() if "dice" in figures}
    assert validated == {"vertebrae_L1", "vertebrae_L2"}, "the chest has no femur: only vertebrae have masks to compare"
    assert metrics["validation"]["femur_left"]["views_present"] == 0 and "all" in metrics["validation"]
    assert list((tmp_path / "bundle" / "training" / "tensorboard").glob("events.out.tfevents.*"))
    model, metadata = load_bundle(tmp_path / "bundle")
    assert metadata["xrecon"]["structures"] == ["femur_left", "vertebrae_L1", "vertebrae_L2"]
    assert metadata["xrecon"]["chains"] == [["vertebrae_L1", "vertebrae_L2"]]
    assert metadata["xrecon"]["geometry"]["size_px"] == [32, 32]
    out = model(torch.rand(2, 1, 32, 32), torch.tensor([900.0, 1000.0]))
    assert out["front_mm"].shape == (2, 3, 32, 32) and torch.all(out["back_mm"] >= out["front_mm"])
    assert out["front_mm"][1].mean() > out["front_mm"][0].mean(), "depth scales with the geometry's distance"


def test_bad_bundles_and_configs_are_refused(dataset, tmp_path):
    train(dataset, tmp_path / "bundle", TrainConfig(epochs=1, **TINY), device="cpu", progress=False)
    bundle = tmp_path / "bundle"
    metadata_path = bundle / "configs" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata["xrecon"]["structures"] = ["femur_left"]
    metadata["network_data_format"]["outputs"] = {k: {**v, "num_channels": 1}
                                                  for k, v in metadata["network_data_format"]["outputs"].items()}
    metadata_path.write_text(json.dumps(metadata))
    with pytest.raises(XreconInputError, match="chains .* name structures the bundle does not have"):
        load_bundle(bundle)
    metadata["xrecon"]["chains"] = []
    metadata_path.write_text(json.dumps(metadata))
    with pytest.raises(XreconInputError, match="does not match the network"):
        load_bundle(bundle)
    (bundle / "models" / "model.safetensors").write_bytes(b"\x80\x04not weights at all" * 10)
    with pytest.raises(XreconInputError, match="not a safetensors weights file"):
        load_bundle(bundle)
    with pytest.raises(XreconInputError, match="unknown training option"):
        TrainConfig.from_sources(None, ["learnig_rate=0.1"])
    with pytest.raises(XreconInputError, match="another config"):
        train(dataset, bundle, TrainConfig(epochs=1, learning_rate=0.5, **TINY), device="cpu", progress=False)


@pytest.mark.slow
def test_two_torchrun_processes_match_one_process_with_the_same_global_batch(dataset, tmp_path):
    # SGD: its step is linear in the gradient, so the two runs agree to rounding (Adam's
    # normalisation would blow rounding differences of near-zero gradients up to whole steps)
    config = ["--set", "epochs=1", "--set", "batch_size=4", "--set", "steps_per_epoch=2", "--set", "optimiser=sgd",
              "--set", "features=[4,4,8,8,16,4]", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "SingleImageReconLib.cli", "train", "--dataset", str(dataset),
                             "--out", str(tmp_path / "one"), *config], capture_output=True, text=True, env=env, timeout=HANG_TIMEOUT_S)
    assert single.returncode == 0, single.stderr
    pair = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "SingleImageReconLib.cli", "train", "--dataset", str(dataset),
                           "--out", str(tmp_path / "two"), *config], capture_output=True, text=True, env=env, timeout=HANG_TIMEOUT_S)
    assert pair.returncode == 0, pair.stderr[-3000:]
    one, two = weights(tmp_path / "one"), weights(tmp_path / "two")
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6)
    assert json.loads((tmp_path / "two" / "configs" / "metadata.json").read_text())["xrecon"]["training"]["processes"] == 2
