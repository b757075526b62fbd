"""Presence gating: a structure the network says is not in the image gets no surface, whatever its mask."""

import numpy as np
import torch

from SingleImageReconLib.reconstruction.reconstruct import reconstruct_radiographs
from SyntheticDataGenLib.projection.geometry import preset_geometry

SIZE = 32


class FixedOutput(torch.nn.Module):
    """Answers every image with the same two structures: a disc of bone 40 mm thick about the
    isocentre, the first said present and the second absent."""

    def __init__(self, presence_logits):
        super().__init__()
        self.presence_logits = torch.tensor([presence_logits], dtype=torch.float32)

    def forward(self, image, reference_mm):
        v, u = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
        disc = ((u - SIZE / 2) ** 2 + (v - SIZE / 2) ** 2 < (SIZE / 4) ** 2).float()
        logits = (disc * 40 - 20).expand(len(image), 2, SIZE, SIZE)
        front = reference_mm.view(-1, 1, 1, 1) - 20 + 0 * logits
        return {"mask_logits": logits, "front_mm": front, "back_mm": front + 40,
                "presence_logits": self.presence_logits.expand(len(image), 2)}


METADATA = {"xrecon": {"structures": ["vertebrae_L1", "femur_left"]},
            "network_data_format": {"inputs": {"image": {"spatial_shape": [SIZE, SIZE]}}}}


def _geometry():
    return preset_geometry("ap", isocenter_ras_mm=(0, 0, 0), size_px=(SIZE, SIZE), pixel_spacing_mm=(4.0, 4.0))


def test_an_absent_structure_is_dropped_and_reported_with_its_presence():
    image = np.random.default_rng(0).random((SIZE, SIZE)).astype(np.float32)
    result = reconstruct_radiographs(FixedOutput([8.0, -8.0]), METADATA, [image], [_geometry()], spacing_mm=2.0)
    present, absent = result.structures["vertebrae_L1"], result.structures["femur_left"]
    assert present.found and present.surface.GetNumberOfPoints() > 0 and present.presence[0] > 0.99
    assert not absent.found and absent.surface is None and absent.presence[0] < 0.01
    assert set(result.surfaces) == {"vertebrae_L1"}


def test_progress_is_reported_for_every_structure():
    image = np.random.default_rng(0).random((SIZE, SIZE)).astype(np.float32)
    calls = []
    reconstruct_radiographs(FixedOutput([8.0, -8.0]), METADATA, [image], [_geometry()], spacing_mm=2.0,
                            progress=lambda done, total, name: calls.append((done, total, name)))
    # structures are meshed side by side: each is reported as it is done, in whatever order
    assert calls[0] == (0, 2, "vertebrae_L1")
    assert [(done, total) for done, total, _ in calls[1:]] == [(1, 2), (2, 2)]
    assert sorted(name for _, _, name in calls[1:]) == ["femur_left", "vertebrae_L1"]


def test_the_presence_threshold_decides():
    image = np.zeros((SIZE, SIZE), np.float32)
    image[8:24, 8:24] = 1
    borderline = FixedOutput([0.5, -0.5])  # presence 0.62 and 0.38
    strict = reconstruct_radiographs(borderline, METADATA, [image], [_geometry()], spacing_mm=2.0, presence_threshold=0.7)
    assert not strict.structures["vertebrae_L1"].found
    lenient = reconstruct_radiographs(borderline, METADATA, [image], [_geometry()], spacing_mm=2.0, presence_threshold=0.3)
    assert lenient.structures["vertebrae_L1"].found and lenient.structures["femur_left"].found


def test_with_two_views_only_those_that_show_the_structure_are_used():
    image = np.zeros((SIZE, SIZE), np.float32)
    image[8:24, 8:24] = 1

    class PerView(FixedOutput):
        def forward(self, images, reference_mm):
            out = super().forward(images, reference_mm)
            out["presence_logits"] = torch.tensor([[8.0, -8.0], [-8.0, -8.0]])[:len(images)]
            return out

    lateral = preset_geometry("lateral-left", isocenter_ras_mm=(0, 0, 0), size_px=(SIZE, SIZE), pixel_spacing_mm=(4.0, 4.0))
    result = reconstruct_radiographs(PerView([0, 0]), METADATA, [image, image], [_geometry(), lateral], spacing_mm=2.0)
    assert result.structures["vertebrae_L1"].views_used == [0]
    assert not result.structures["femur_left"].found
