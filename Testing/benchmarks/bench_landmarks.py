"""Landmark model benchmark: localisation, σ calibration and presence on datasets, bundles side by side.

    xrecon bench landmarks --bundle NEW [--bundle OLD ...] --dataset DIR[:SPLIT] [--radiograph PNG ...]

For each dataset (and split: train, validation or all) and each bundle, per bone type
(vertebra, sacrum, hip, femur) and pooled: how many visible landmarks the network found, their
median error (px of the detector), the share of true points within 1σ and 2σ of the predicted
σ (a calibrated 2D Gaussian gives 0.39 and 0.86), and presence precision and recall over the
landmarks the case places or lacks (a bone the case has no label for is absent from its images:
finding it is a false positive, an invented bone) and the presence probability's ROC AUC (how well
it tells the landmarks in the image from those that are not, whatever the threshold: two bundles
that differ only in where they draw the line have the same), how many landmarks an image are found where
they are not in it, and where the heatmaps put every visible landmark, found or not (median px:
a bone the network does not recognise is far off, one it only doubts is close). With several bundles, each later bundle's
median error is also given as a ratio to the first's, measured on the same images in this run.
Make the datasets with ``xrecon generate --landmarks-dir`` on patients the bundles never saw.

Real radiographs (``--radiograph``, no 3D truth; AP, 430 mm across the larger side) say which
bones each bundle finds (at least half of a bone's landmarks present): a chest radiograph must
show no pelvis or femur.
"""

from __future__ import annotations

import argparse
import collections

import numpy as np
import torch

from SingleImageReconLib.networks.landmark_bundle import load_landmark_bundle
from SingleImageReconLib.networks.landmark_training import LandmarkSamples, landmark_outcomes, outcome_figures
from SyntheticDataGenLib.dataset.torch_dataset import SyntheticXrayDataset

LOWER_LIMB = ("femur", "hip", "sacrum")


def bone_type(label: str) -> str:
    structure = label.split("/")[0]
    return "vertebra" if structure.startswith("vertebrae_") else structure.replace("_left", "").replace("_right", "")


def figures(model, labels: list[str], samples: LandmarkSamples) -> dict[str, dict]:
    """{bone type or "all": ``outcome_figures``} from one pass over the samples."""
    outcomes = landmark_outcomes(model, samples, torch.device("cpu"))
    kinds = np.array([bone_type(label) for label in labels])
    return {kind: outcome_figures(outcomes, None if kind == "all" else kinds == kind)
            for kind in [*sorted(set(kinds)), "all"]}


def bones_found(model, metadata: dict, path: str, threshold: float = 0.5) -> list[str]:
    """The bones of which at least half the landmarks are present in a real radiograph."""
    from SingleImageReconLib.radiographs.radiograph_io import read_radiograph
    from SingleImageReconLib.shape_models.ssm_reconstruction import predict_landmarks
    from SyntheticDataGenLib.projection.dicom_geometry import DEFAULT_FIELD_OF_VIEW_MM, spacing_from_field_of_view
    from SyntheticDataGenLib.projection.geometry import preset_geometry

    image = read_radiograph(path).image
    height, width = image.shape
    geometry = preset_geometry("ap", isocenter_ras_mm=(0, 0, 0), size_px=(width, height),
                               pixel_spacing_mm=spacing_from_field_of_view(DEFAULT_FIELD_OF_VIEW_MM, (width, height)))
    prediction = predict_landmarks(model, metadata, [image], [geometry])[0]
    votes = collections.defaultdict(list)
    for label, presence in zip(prediction.labels, prediction.presence):
        votes[label.split("/")[0]].append(presence >= threshold)
    return [structure for structure, present in votes.items() if np.mean(present) >= 0.5]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xrecon bench landmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", action="append", required=True, help="a landmark bundle (repeat to compare)")
    parser.add_argument("--dataset", action="append", default=[], metavar="DIR[:SPLIT]")
    parser.add_argument("--radiograph", action="append", default=[], metavar="FILE", help="a real radiograph")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    bundles = [load_landmark_bundle(path) for path in args.bundle]
    for spec in args.dataset:
        folder, _, split = spec.partition(":")
        dataset = SyntheticXrayDataset(folder, None if split in ("", "all") else split)
        print(f"{spec}: {len(dataset)} images")
        first = None
        for path, (model, metadata) in zip(args.bundle, bundles):
            labels = metadata["xrecon"]["landmarks"]
            table = figures(model, labels, LandmarkSamples(dataset, labels))
            first = first or table
            print(f"  {path}")
            for kind, row in table.items():
                ratio = (row["median_error_px"] / first[kind]["median_error_px"]
                         if kind in first and first[kind]["median_error_px"] else float("nan"))
                print(f"    {kind:9s} found {row['landmarks_scored']:5d}  median {row['median_error_px']:6.1f} px"
                      + (f" ({ratio:.2f} of the first)" if table is not first else "")
                      + f"  within 1σ {row['within_1_sigma']:.2f} 2σ {row['within_2_sigma']:.2f}"
                      f"  presence precision {row['presence_precision']:.2f} recall {row['presence_recall']:.2f}"
                      f" ROC AUC {row['presence_roc_auc']:.2f}"
                      f"  invented {row['invented_per_image']:.1f} an image"
                      f"  heatmap median {row['heatmap_median_error_px']:.1f} px (every visible landmark)")
    for path in args.radiograph:
        print(f"{path} (real; no 3D truth)")
        for bundle, (model, metadata) in zip(args.bundle, bundles):
            found = bones_found(model, metadata, path)
            lower = [name for name in found if name.startswith(LOWER_LIMB)]
            print(f"  {bundle}: found {', '.join(found) or 'nothing'}; pelvis or femur: {', '.join(lower) or 'none'}")
    return 0
