"""Synthetic training sets: reproducible, shardable, resumable, split by case, targets exact."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from conftest import HANG_TIMEOUT_S, run_xrecon
from SyntheticDataGenLib.augmentation.detector import collimation_weight
from SyntheticDataGenLib.augmentation.ladder import PRESETS, sample_anatomy, sample_augmentation
from SyntheticDataGenLib.dataset.torch_dataset import SyntheticXrayDataset, load_sample
from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.dataset.generation import (BaseView, CaseLoader, CaseSource, GenerationSettings, dataset_plan,
                                            generate_dataset, mirrored_name, plan_tasks, read_manifests, sample_rng,
                                            shard_sample_count, shard_tasks)
from SyntheticDataGenLib.projection.geometry import ProjectionGeometry
from SyntheticDataGenLib.cases.ct_io import ijk_to_ras
from SyntheticDataGenLib.cases.sample_data import sample_case
from SyntheticDataGenLib.projection.view import render_view

STRUCTURES = ["femur_left", "femur_right", "vertebrae_L3"]
SMALL = BaseView(size_px=(64, 64), pixel_spacing_mm=(6.4, 6.4))


def case(name="abdomen-pelvis", split="train"):
    files = sample_case(name)
    return CaseSource(name, files.ct_path, files.labels_path, files.table_path, split)


def settings(preset="heavy", views=6, seed=7, anatomy=0.0, **strengths):
    return GenerationSettings(STRUCTURES, views, seed, SMALL, PRESETS[preset].scaled(anatomy=anatomy, **strengths),
                              preset, views_per_anatomy=2)


def files_of(folder):
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*.npz"))}


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path):
    for name in ("a", "b"):
        generate_dataset(tmp_path / name, [case()], settings())
    generate_dataset(tmp_path / "c", [case()], settings(seed=8))
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b") and len(files_of(tmp_path / "a")) == 6
    assert (tmp_path / "a" / "manifest.jsonl").read_bytes() == (tmp_path / "b" / "manifest.jsonl").read_bytes()
    assert files_of(tmp_path / "a") != files_of(tmp_path / "c")


def test_shards_are_disjoint_and_their_union_is_the_unsharded_set(tmp_path):
    generate_dataset(tmp_path / "whole", [case()], settings())
    seen = {}
    for index in range(3):
        written = generate_dataset(tmp_path / "sharded", [case()], settings(), shard=(index, 3))
        rows = [json.loads(line) for line in (tmp_path / "sharded" / f"manifest.shard-{index}-of-3.jsonl").open()]
        assert written == len(rows) > 0
        assert not seen.keys() & {row["id"] for row in rows}, "shards overlap"
        seen.update({row["id"]: row for row in rows})
    assert files_of(tmp_path / "sharded") == files_of(tmp_path / "whole")
    assert [row["id"] for row in read_manifests(tmp_path / "sharded")] == [
        row["id"] for row in read_manifests(tmp_path / "whole")]


def test_split_is_by_case(tmp_path):
    cases = [case(), case("chest", split="validation")]
    chest_settings = GenerationSettings(["vertebrae_L1", "femur_left"], 3, 1, SMALL, PRESETS["light"], "light")
    generate_dataset(tmp_path, cases, chest_settings)
    rows = read_manifests(tmp_path)
    assert {row["split"] for row in rows if row["case"] == "chest"} == {"validation"}
    assert {row["split"] for row in rows if row["case"] == "abdomen-pelvis"} == {"train"}
    validation = SyntheticXrayDataset(tmp_path, split="validation")
    assert len(validation) == 3 and all(row["case"] == "chest" for row in validation.rows)
    item = validation[0]
    assert item["image"].shape == (1, 64, 64) and item["masks"].shape == (2, 64, 64)
    assert item["present"].tolist() == [True, False], "the chest has no femur: present says so"


def test_every_target_matches_a_render_from_the_stored_geometry(tmp_path):
    generate_dataset(tmp_path, [case()], settings(views=4))
    loader = CaseLoader(STRUCTURES, extend_body_mm=settings().extend_body_mm)
    for row in read_manifests(tmp_path):
        stored = load_sample(tmp_path / row["file"])
        geometry = ProjectionGeometry.from_dict(row["geometry"])
        prepared = loader.prepare(case(), row["anatomy"])
        draw = row["augmentation"]
        view = render_view(prepared.volume, geometry, model=draw["model"], energy_kev=draw["energy_kev"],
                           bone_density=draw["bone_density"])
        np.testing.assert_array_equal(stored["line_integral"], view.line_integral.numpy())
        # behind a collimator blade (where it leaves less than half the image) the targets are 0
        field = collimation_weight(geometry.height, geometry.width, draw["collimation"]).numpy() >= 0.5
        for channel, name in enumerate(STRUCTURES):
            source = view.names.index(mirrored_name(name) if draw["flip"] else name)
            np.testing.assert_array_equal(stored["masks"][channel], view.masks[source].numpy() * field)
            np.testing.assert_array_equal(stored["front_mm"][channel], view.front_mm[source].numpy() * field)
            np.testing.assert_array_equal(stored["back_mm"][channel], view.back_mm[source].numpy() * field)
        assert stored["image"].min() >= 0 and stored["image"].max() <= 1


def test_a_flip_swaps_left_and_right_targets(tmp_path):
    flips = [v for v in range(40) if sample_augmentation(PRESETS["heavy"], sample_rng(7, "abdomen-pelvis", v, 0))["flip"]]
    assert flips, "heavy flips some images"
    generate_dataset(tmp_path, [case()], settings(views=flips[0] + 1))
    row = next(r for r in read_manifests(tmp_path) if r["view"] == flips[0])
    geometry = ProjectionGeometry.from_dict(row["geometry"])
    stored = load_sample(tmp_path / row["file"])
    # in a mirrored image the patient's left lies on the image left: the femur_left channel is there
    left = stored["masks"][STRUCTURES.index("femur_left")]
    right = stored["masks"][STRUCTURES.index("femur_right")]
    centre_u = (geometry.width - 1) / 2
    assert np.argwhere(left)[:, 1].mean() < centre_u < np.argwhere(right)[:, 1].mean() or row["augmentation"][
        "inplane_rotation_deg"] ** 2 > 100


def test_presets_change_what_they_claim(tmp_path):
    generate_dataset(tmp_path / "none", [case()], settings("none", views=3))
    for row in read_manifests(tmp_path / "none"):
        draw, geometry = row["augmentation"], row["geometry"]
        assert draw["lao_deg"] == draw["cranial_deg"] == 0 and not draw["flip"] and draw["photons_per_pixel"] is None
        assert geometry["lao_deg"] == 0 and geometry["pixel_spacing_mm"] == [6.4, 6.4]
        assert not load_sample(tmp_path / "none" / row["file"])["overlay"].any()
    heavy = [sample_augmentation(PRESETS["heavy"], sample_rng(0, "x", v, 0)) for v in range(200)]
    light = [sample_augmentation(PRESETS["light"], sample_rng(0, "x", v, 0)) for v in range(200)]
    spread = lambda draws, key: np.ptp([d[key] for d in draws])  # noqa: E731
    assert spread(heavy, "lao_deg") > 45 and 10 < spread(light, "lao_deg") <= 20
    assert any(d["flip"] for d in heavy) and not any(d["flip"] for d in light)
    assert np.mean([d["text_count"] > 0 for d in heavy]) > 0.5
    assert {d["model"] for d in heavy} == {"linear", "two-material"}
    # a radiograph hardly shows a shift along the beam, so heavy moves the patient across it
    shifts = np.array([d["translation_mm"] for d in heavy])
    assert np.abs(shifts[:, :2]).max() > 30 and np.abs(shifts[:, 2]).max() <= 5
    off = PRESETS["heavy"].scaled(geometric=0, physics=0, style=0, anatomy=0)
    assert sample_augmentation(off, np.random.default_rng(3)) == sample_augmentation(PRESETS["none"],
                                                                                 np.random.default_rng(3))
    generate_dataset(tmp_path / "heavy", [case()], settings(views=6))
    overlays = [load_sample(tmp_path / "heavy" / row["file"])["overlay"].any() for row in read_manifests(tmp_path / "heavy")]
    assert any(overlays)


def test_a_closeup_centres_its_bone_and_zooms_in(tmp_path):
    """Close-ups aim at one bone (the draw's fraction of the case's bones), keep its depth and
    shrink the pixel pitch by their zoom; the other bones may leave the image."""
    import dataclasses

    config = dataclasses.replace(PRESETS["none"], closeup_probability=1.0, closeup_zoom=(2.0, 2.0))
    plain = GenerationSettings(STRUCTURES, 3, 7, SMALL, PRESETS["none"], "none", views_per_anatomy=2)
    close = dataclasses.replace(plain, augmentation=config, augmentation_name="closeup")
    generate_dataset(tmp_path / "plain", [case()], plain)
    generate_dataset(tmp_path / "close", [case()], close)
    for before, after in zip(read_manifests(tmp_path / "plain"), read_manifests(tmp_path / "close")):
        closeup = after["augmentation"]["closeup"]
        bone = STRUCTURES[min(int(closeup["bone_fraction"] * len(STRUCTURES)), len(STRUCTURES) - 1)]
        geometry = ProjectionGeometry.from_dict(after["geometry"])
        assert np.allclose(geometry.pixel_spacing_mm, np.asarray(before["geometry"]["pixel_spacing_mm"]) / 2)
        mask = load_sample(tmp_path / "close" / after["file"])["masks"][STRUCTURES.index(bone)]
        rows, columns = np.nonzero(mask)
        centre = (np.array(geometry.size_px) - 1) / 2
        assert np.abs([columns.mean() - centre[0], rows.mean() - centre[1]]).max() < 6, bone
        # moved across the beam only: the source keeps its distance to the bone's depth plane
        beam = geometry.beam_direction_ras
        moved = np.asarray(geometry.source_ras_mm) - np.asarray(before["geometry"]["source_ras_mm"])
        assert abs(moved @ beam) < 1e-6 and np.linalg.norm(moved) > 1
    assert len({row["augmentation"]["closeup"]["bone_fraction"] for row in read_manifests(tmp_path / "close")}) == 3
    heavy = [sample_augmentation(PRESETS["heavy"], sample_rng(0, "x", v, 0)) for v in range(200)]
    assert 0.15 < np.mean([d["closeup"] is not None for d in heavy]) < 0.45
    off = PRESETS["heavy"].scaled(geometric=0)
    assert all(sample_augmentation(off, sample_rng(0, "x", v, 0))["closeup"] is None for v in range(50))


def test_a_smaller_scan_keeps_a_field_around_one_bone_and_cuts_labels_and_landmarks_with_it(tmp_path):
    """The scan-field rung: air outside an axial disc or square about one bone, the labels cut
    with it (targets stay exact), and landmarks cut away are known but not in the image."""
    import dataclasses

    from SyntheticDataGenLib.anatomy.scan_field import AIR_HU, cut_to_field, scan_field
    from SyntheticDataGenLib.cases.landmarks import project_landmarks, write_markups_json

    source = case()
    loader = CaseLoader(STRUCTURES, extend_body_mm=settings().extend_body_mm)
    raw = loader.raw(source)
    centres = raw.bone_centres_ras_mm
    points = np.array([centres["femur_left"], centres["femur_right"], centres["vertebrae_L3"]])
    write_markups_json(tmp_path / "landmarks.mrk.json", ["femur_left/c", "femur_right/c", "vertebrae_L3/c"], points)
    with_landmarks = dataclasses.replace(source, landmarks_path=tmp_path / "landmarks.mrk.json")
    config = dataclasses.replace(PRESETS["none"], scan_field_probability=1.0, scan_field_half_width_mm=(70.0, 70.0),
                                 scan_field_length_mm=(120.0, 120.0))
    run = GenerationSettings(STRUCTURES, 8, 5, SMALL, config, "field", views_per_anatomy=1)
    generate_dataset(tmp_path / "set", [with_landmarks], run)
    kept_bones = set()
    for row in read_manifests(tmp_path / "set"):
        field = scan_field(row["anatomy"]["scan_field"], centres)
        inside = field.contains(points)
        assert inside.sum() == 1, "each bone's field holds that bone's centre and no other"
        stored = load_sample(tmp_path / "set" / row["file"])
        _, on_detector = project_landmarks(points, ProjectionGeometry.from_dict(row["geometry"]))
        np.testing.assert_array_equal(stored["landmarks_visible"], on_detector & inside)
        assert stored["landmarks_known"].all()
        assert stored["present"].tolist() == inside.tolist()
        view = render_view(loader.prepare(source, row["anatomy"]).volume, ProjectionGeometry.from_dict(row["geometry"]))
        np.testing.assert_array_equal(stored["line_integral"], view.line_integral.numpy())
        kept_bones.add(STRUCTURES[int(np.flatnonzero(inside)[0])])
    assert len(kept_bones) >= 2

    cut, labels = cut_to_field(raw.ct, raw.segmentation, field)
    values, before = sitk.GetArrayFromImage(cut), sitk.GetArrayFromImage(raw.ct)
    matrix = ijk_to_ras(raw.ct)
    kji = np.argwhere(np.ones(values.shape, bool))[::97]
    ras = kji[:, ::-1] @ matrix[:3, :3].T + matrix[:3, 3]
    keep = field.contains(ras)
    assert keep.any() and (~keep).any()
    np.testing.assert_array_equal(values[tuple(kji[keep].T)], before[tuple(kji[keep].T)])
    assert (values[tuple(kji[~keep].T)] == AIR_HU).all()
    assert sum(labels.voxel_counts().values()) < sum(raw.segmentation.voxel_counts().values())
    assert not any(labels.mask_array(name)[tuple(kji[~keep].T)].any() for name in raw.names)
    off = PRESETS["heavy"].scaled(anatomy=0)
    assert all(sample_anatomy(off, sample_rng(0, "x", g, 1), [])["scan_field"] is None for g in range(30))


def test_a_hip_pose_turns_the_femur_about_its_head_and_leaves_the_pelvis(tmp_path):
    """The hip-pose rung: the femur turned rigidly about its head's centre (its landmarks with
    it), the hip bones where they were, the stored DRR that of the posed anatomy."""
    import dataclasses

    from SyntheticDataGenLib.anatomy.hip_pose import HipPose, pose_hip
    from SyntheticDataGenLib.cases.landmarks import project_landmarks, read_markups_json

    files = sample_case("abdomen-pelvis")
    landmarks_path = files.ct_path.parent / "landmarks.mrk.json"
    source = dataclasses.replace(case(), landmarks_path=landmarks_path)
    labels, points = read_markups_json(landmarks_path)
    structures = ["femur_left", "femur_right", "hip_left", "hip_right"]
    config = dataclasses.replace(PRESETS["none"].with_hip_poses(1.0), hip_pose_probability=1.0)
    run = GenerationSettings(structures, 4, 3, SMALL, config, "hips", views_per_anatomy=2)
    generate_dataset(tmp_path / "set", [source], run)
    loader = CaseLoader(structures, extend_body_mm=run.extend_body_mm)
    raw = loader.raw(source)
    matrix = ijk_to_ras(raw.ct)
    centroid = lambda mask: (np.argwhere(mask)[:, ::-1] @ matrix[:3, :3].T + matrix[:3, 3]).mean(axis=0)  # noqa: E731
    for row in read_manifests(tmp_path / "set"):
        poses = row["anatomy"]["hip_pose"]
        assert set(poses) == {"femur_left", "femur_right"}
        prepared = loader.prepare(source, row["anatomy"])
        moved = points.copy()
        for structure, angles in poses.items():
            head = points[labels.index(f"{structure}/femoral_head_centre")]
            pose = HipPose(structure, tuple(head), angles["flexion_deg"], angles["abduction_deg"])
            on_femur = np.array([label.startswith(structure + "/") for label in labels])
            moved[on_femur] = pose.move_points(points[on_femur])
        np.testing.assert_allclose(prepared.landmarks[1], moved, atol=1e-9)
        stored = load_sample(tmp_path / "set" / row["file"])
        geometry = ProjectionGeometry.from_dict(row["geometry"])
        uv, _ = project_landmarks(moved, geometry)
        seen = stored["landmarks_visible"]
        np.testing.assert_allclose(stored["landmarks_uv"][seen], uv[seen], atol=1e-3)
        view = render_view(prepared.volume, geometry)
        np.testing.assert_array_equal(stored["line_integral"], view.line_integral.numpy())

    pose = HipPose("femur_left", tuple(points[labels.index("femur_left/femoral_head_centre")]), 45.0, 20.0)
    ct, segmentation = pose_hip(raw.ct, raw.segmentation, pose)
    before, after = raw.segmentation.mask_array("femur_left"), segmentation.mask_array("femur_left")
    assert np.linalg.norm(centroid(after) - centroid(before)) > 10.0, "the femur moved"
    assert np.linalg.norm(centroid(after) - pose.move_points(centroid(before)[None])[0]) < 3.0, "rigidly, about its head"
    for name in ("hip_left", "hip_right", "femur_right", "vertebrae_L3"):
        a, b = raw.segmentation.mask_array(name), segmentation.mask_array(name)
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.97, name

    def unlabelled_bone(image, labels):  # voxels above 200 HU that no label holds
        inside = np.zeros(before.shape, bool)
        for name in labels.names:
            inside |= labels.mask_array(name)
        return int(((sitk.GetArrayFromImage(image) > 200) & ~inside).sum())

    # the femur's old place holds soft tissue: no copy of the bone is left there (816 → 765 on
    # this case; without the fill 1021)
    assert unlabelled_bone(ct, segmentation) <= unlabelled_bone(raw.ct, raw.segmentation)
    assert sample_anatomy(PRESETS["heavy"], sample_rng(0, "x", 0, 1), [])["hip_pose"] is None, "no preset holds it"
    with pytest.raises(XreconInputError, match="hip pose strength"):
        PRESETS["heavy"].with_hip_poses(1.5)


def test_a_contact_sheet_draws_the_samples_a_filter_accepts(tmp_path):
    from PIL import Image

    from SyntheticDataGenLib.dataset.preview import contact_sheet

    generate_dataset(tmp_path / "set", [case()], settings("light", views=3))
    sheet = contact_sheet(tmp_path / "set", tmp_path / "sheet.png", count=2, columns=2,
                          where=lambda row: row["view"] > 0)
    assert Image.open(sheet).size[0] > 200
    with pytest.raises(XreconInputError, match="filter"):
        contact_sheet(tmp_path / "set", tmp_path / "none.png", where=lambda row: False)


def test_existing_dataset_with_other_settings_or_schema_is_refused(tmp_path):
    generate_dataset(tmp_path, [case()], settings(views=1))
    with pytest.raises(XreconInputError, match="other settings"):
        generate_dataset(tmp_path, [case()], settings(views=1, seed=99))
    header = json.loads((tmp_path / "dataset.json").read_text())
    header["schema_version"] = 0
    (tmp_path / "dataset.json").write_text(json.dumps(header))
    with pytest.raises(XreconInputError, match="schema version"):
        generate_dataset(tmp_path, [case()], settings(views=1))
    with pytest.raises(XreconInputError, match="schema version"):
        SyntheticXrayDataset(tmp_path)


@pytest.mark.slow
def test_deformed_anatomy_keeps_targets_consistent(tmp_path):
    generate_dataset(tmp_path, [case()], settings("heavy", views=2, anatomy=1.0))
    row = read_manifests(tmp_path)[0]
    assert row["anatomy"]["deformation_mm"] > 0
    prepared = CaseLoader(STRUCTURES, extend_body_mm=150.0).prepare(case(), row["anatomy"])
    draw = row["augmentation"]
    view = render_view(prepared.volume, ProjectionGeometry.from_dict(row["geometry"]), model=draw["model"],
                       energy_kev=draw["energy_kev"], bone_density=draw["bone_density"])
    stored = load_sample(tmp_path / row["file"])
    np.testing.assert_array_equal(stored["line_integral"], view.line_integral.numpy())
    undeformed = CaseLoader(STRUCTURES, extend_body_mm=150.0).prepare(case(), {**row["anatomy"], "deformation_mm": 0.0})
    assert not torch.equal(render_view(undeformed.volume, ProjectionGeometry.from_dict(row["geometry"])).masks,
                           render_view(prepared.volume, ProjectionGeometry.from_dict(row["geometry"])).masks)


@pytest.mark.slow
def test_an_interrupted_run_resumes_without_duplicates(tmp_path):
    out = tmp_path / "dataset"
    args = ["generate", "--case", "abdomen-pelvis", "--structures", ",".join(STRUCTURES), "--views", "10",
            "--detector-size-px", "64", "64", "--pixel-spacing-mm", "6.4", "6.4", "--anatomy", "0", "--shape", "0",
            "--progress", "lines", "--out", str(out)]
    process = subprocess.Popen([sys.executable, "-m", "SingleImageReconLib.cli", *args], stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("progress 3/"):
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=HANG_TIMEOUT_S)
    assert 3 <= len(read_manifests(out)) < 10
    result = run_xrecon(*args)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]
    assert sorted(row["id"] for row in rows) == [f"abdomen-pelvis/{v:06d}" for v in range(10)]
    for row in rows:
        load_sample(out / row["file"])
    reference = tmp_path / "reference"
    result = run_xrecon(*args[:-1], str(reference))
    assert files_of(out) == files_of(reference), "the resumed set equals an uninterrupted one"
    time.sleep(0)


def test_shard_sizes_are_counted_without_listing_the_tasks():
    cases = [case("abdomen-pelvis"), case("chest")]
    for views in (1, 5, 13):
        for per_anatomy in (1, 3, 20):
            for count in (1, 2, 3):
                plan = GenerationSettings(STRUCTURES, views, 7, SMALL, PRESETS["heavy"], "heavy",
                                          views_per_anatomy=per_anatomy)
                sizes = [shard_sample_count(cases, plan, (index, count)) for index in range(count)]
                listed = [sum(len(task.views) for task in shard_tasks(plan_tasks(cases, plan), (index, count)))
                          for index in range(count)]
                assert sizes == listed and sum(sizes) == 2 * views


def test_the_plan_counts_what_is_already_there(tmp_path):
    plan = settings(views=4)
    generate_dataset(tmp_path, [case()], settings(views=2))  # the first two of the plan's four views
    estimate = dataset_plan(tmp_path, [case()], plan)
    assert (estimate.samples, estimate.finished) == (4, 2) and estimate.seconds > 0 and estimate.bytes > 0


def test_a_huge_request_shows_its_plan_and_is_refused_at_once_when_the_disk_is_too_small(tmp_path):
    result = run_xrecon("generate", "--case", "chest", "--views", "100000000", "--out", tmp_path / "huge")
    assert result.returncode == 2, result.stderr
    plan, refusal = result.stderr.strip().splitlines()[-2:]
    assert plan.startswith("xrecon generate: 100000000 sample(s) in shard 0/1, 0 already there; the rest take about")
    assert "days" in plan and refusal.startswith("xrecon generate: error: the samples would need about")
    assert not (tmp_path / "huge").exists()


@pytest.mark.slow
def test_registration_moves_a_case_towards_another_of_the_same_region(tmp_path):
    import dataclasses

    import SimpleITK as sitk

    from SyntheticDataGenLib.anatomy.deformation import random_bspline_transform, warp_case
    from SyntheticDataGenLib.cases.labels import read_segmentation

    # a second "patient" of the same region: the sample, deformed
    original = case()
    ct = sitk.ReadImage(str(original.ct_path))
    segmentation = read_segmentation(original.labels_path, original.table_path, reference=ct)
    other_ct, other_labels = warp_case(ct, segmentation, random_bspline_transform(ct, np.random.default_rng(5), 5.0))
    folder = tmp_path / "other"
    folder.mkdir()
    sitk.WriteImage(other_ct, str(folder / "ct.nii.gz"))
    sitk.WriteImage(other_labels.layers[0], str(folder / "labels.nii.gz"))
    other = CaseSource("other", folder / "ct.nii.gz", folder / "labels.nii.gz", original.table_path, "train")
    config = dataclasses.replace(PRESETS["none"], registration_probability=1.0)
    run = GenerationSettings(STRUCTURES, 1, 3, SMALL, config, "custom")
    generate_dataset(tmp_path / "dataset", [original, other], run)
    rows = {row["case"]: row for row in read_manifests(tmp_path / "dataset")}
    assert rows["abdomen-pelvis"]["anatomy"]["towards_case"] == "other"
    assert rows["other"]["anatomy"]["towards_case"] == "abdomen-pelvis"
    assert sorted(p.name for p in (tmp_path / "dataset" / "registrations").iterdir()) == [
        "abdomen-pelvis__other.mha", "other__abdomen-pelvis.mha"]
    loader = CaseLoader(STRUCTURES, extend_body_mm=run.extend_body_mm, cases=[original, other],
                        cache_dir=tmp_path / "dataset" / "registrations")
    row = rows["abdomen-pelvis"]
    prepared = loader.prepare(original, row["anatomy"])
    view = render_view(prepared.volume, ProjectionGeometry.from_dict(row["geometry"]))
    stored = load_sample(tmp_path / "dataset" / row["file"])
    np.testing.assert_array_equal(stored["masks"], view.masks.numpy().astype(np.uint8))
    np.testing.assert_array_equal(stored["line_integral"], view.line_integral.numpy())


def test_a_cached_registration_is_exactly_the_field_that_was_computed(tmp_path, monkeypatch):
    # a shard that reads the cache must render what the shard that computed it rendered: NIfTI's
    # float32 header moved a field's origin by up to 3e-5 mm, and now and then a voxel with it
    from scipy.spatial.transform import Rotation

    from SyntheticDataGenLib.anatomy import deformation

    field = sitk.GetImageFromArray(np.random.default_rng(0).normal(0, 3, (8, 7, 6, 3)), isVector=True)
    field.SetOrigin((-123.456789012345, 55.1234567891234, -987.654321987654))
    field.SetSpacing((2.0000001, 2.0000001, 2.5000001))
    field.SetDirection(Rotation.from_rotvec([0.1, -0.2, 0.3]).as_matrix().ravel().tolist())
    # the registration itself is not what is tested here (it takes tens of seconds): a known field
    monkeypatch.setattr(deformation, "register_cases",
                        lambda *args, **kwargs: sitk.DisplacementFieldTransform(sitk.Image(field)))
    files = sample_case("abdomen-pelvis")
    a, b = (CaseSource(name, files.ct_path, files.labels_path, files.table_path, "train") for name in "ab")
    computed, cached = (CaseLoader(STRUCTURES, cases=[a, b], cache_dir=tmp_path).registration(a, b).GetDisplacementField()
                        for _ in range(2))
    assert [path.name for path in tmp_path.iterdir()] == ["a__b.mha"]
    for image in (computed, cached):
        assert (image.GetOrigin(), image.GetSpacing(), image.GetDirection()) == (
            field.GetOrigin(), field.GetSpacing(), field.GetDirection())
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(field))


def test_landmarks_beside_a_case_are_projected_into_every_sample(tmp_path):
    from SyntheticDataGenLib.cases.landmarks import write_markups_json

    points = np.array([[-100.0, 120.0, 150.0], [0.0, 120.0, 300.0], [0.0, 5000.0, 0.0]])  # the last is far off
    write_markups_json(tmp_path / "landmarks.mrk.json", ["femur_left head", "L3 body", "nowhere"], points)
    source = case()
    with_landmarks = CaseSource(source.name, source.ct_path, source.labels_path, source.table_path, "train",
                                tmp_path / "landmarks.mrk.json")
    generate_dataset(tmp_path / "dataset", [with_landmarks], settings("light", views=3))
    for row in read_manifests(tmp_path / "dataset"):
        stored = load_sample(tmp_path / "dataset" / row["file"])
        uv, _ = ProjectionGeometry.from_dict(row["geometry"]).project(points)
        visible = stored["landmarks_visible"]
        assert visible.tolist()[2] is False and visible[:2].all()
        np.testing.assert_allclose(stored["landmarks_uv"][:2], uv[:2], atol=1e-3)
        assert row["landmark_labels"] == ["femur_left head", "L3 body", "nowhere"]


def test_targets_and_landmarks_stop_at_the_collimator_as_the_image_does(tmp_path):
    """Behind the blades the image shows nothing, so masks, depths and landmarks end there too;
    otherwise a network learns to draw bones it cannot see."""
    import dataclasses

    from SyntheticDataGenLib.cases.landmarks import project_landmarks, write_markups_json

    source = case()
    ct_box = np.array([[-100.0, 120.0, 150.0], [100.0, 120.0, 150.0], [0.0, 120.0, 300.0], [0.0, 120.0, 220.0]])
    write_markups_json(tmp_path / "landmarks.mrk.json", ["a", "b", "c", "d"], ct_box)
    with_landmarks = CaseSource(source.name, source.ct_path, source.labels_path, source.table_path, "train",
                                tmp_path / "landmarks.mrk.json")
    wide_blades = dataclasses.replace(PRESETS["light"], collimation_probability=1.0, collimation_max_fraction=0.4)
    generate_dataset(tmp_path / "set", [with_landmarks],
                     GenerationSettings(STRUCTURES, 4, 3, SMALL, wide_blades, "light", views_per_anatomy=2))
    loader = CaseLoader(STRUCTURES, extend_body_mm=settings().extend_body_mm)
    hidden_pixels = hidden_landmarks = 0
    for row in read_manifests(tmp_path / "set"):
        stored = load_sample(tmp_path / "set" / row["file"])
        draw, geometry = row["augmentation"], ProjectionGeometry.from_dict(row["geometry"])
        field = collimation_weight(geometry.height, geometry.width, draw["collimation"]).numpy() >= 0.5
        view = render_view(loader.prepare(case(), row["anatomy"]).volume, geometry)
        assert not stored["masks"][:, ~field].any() and not stored["front_mm"][:, ~field].any()
        hidden_pixels += int(view.masks.numpy()[:, ~field].sum())
        uv, on_detector = project_landmarks(ct_box, geometry)
        pixel = np.floor(uv + 0.5).astype(int)
        for index in np.flatnonzero(on_detector):
            u, v = np.clip(pixel[index], 0, [geometry.width - 1, geometry.height - 1])
            assert stored["landmarks_visible"][index] == bool(field[v, u])
            hidden_landmarks += not field[v, u]
    assert hidden_pixels > 0 and hidden_landmarks > 0, "no blade covered a bone or a landmark: the test shows nothing"
