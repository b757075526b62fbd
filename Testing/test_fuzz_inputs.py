"""Malformed input to every subcommand: exit status 2 and one line saying what is wrong, never a traceback.

Each case is a file of an accepted type that is empty, random bytes, truncated, of the wrong
dimensionality or dtype, or holds NaN/inf; a JSON file with a key missing, an extra key or a
value of the wrong type; or an absurd, negative or NaN number. The commands run in this
interpreter, so a few hundred cases take seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from conftest import xrecon_in_process
from SyntheticDataGenLib.projection.geometry import preset_geometry
from SyntheticDataGenLib.cases.sample_data import resources_dir, sample_case

CASE = sample_case("abdomen-pelvis")


def _bytes_variants(folder: Path, suffix: str, valid: bytes) -> list[tuple[str, Path]]:
    """Empty, random and truncated files of one type."""
    variants = []
    for name, content in (("empty", b""), ("random", np.random.default_rng(len(suffix)).bytes(3000)),
                          ("truncated", valid[: len(valid) // 2])):
        path = folder / f"{name}{suffix}"
        path.write_bytes(content)
        variants.append((f"{name} {suffix}", path))
    return variants


def _image_file(folder: Path, name: str, array: np.ndarray, vector: bool = False) -> Path:
    path = folder / name
    sitk.WriteImage(sitk.GetImageFromArray(array, isVector=vector), str(path))
    return path


def _radiograph_files(folder: Path) -> list[tuple[str, Path]]:
    phantom = np.full((64, 80), 0.2, np.float32)
    phantom[20:40, 25:50] = 1.0
    valid_png = folder / "valid.png"
    Image.fromarray((phantom * 255).astype(np.uint8)).save(valid_png)
    files = _bytes_variants(folder, ".png", valid_png.read_bytes())
    for suffix in (".nrrd", ".mha", ".dcm", ".jpg", ".tif"):
        files += [(label, path) for label, path in _bytes_variants(folder, suffix, valid_png.read_bytes())
                  if not label.startswith("truncated")]
    nan = phantom.copy()
    nan[5, 5] = np.nan
    inf = phantom.copy()
    inf[5, 5] = np.inf
    files += [("NaN radiograph", _image_file(folder, "nan.nrrd", nan)),
              ("inf radiograph", _image_file(folder, "inf.nrrd", inf)),
              ("3D volume as radiograph", _image_file(folder, "volume.nrrd", np.random.default_rng(0).random((8, 64, 80)))),
              ("1x1 radiograph", _image_file(folder, "dot.nrrd", np.ones((1, 1), np.float32))),
              ("one-row radiograph", _image_file(folder, "line.nrrd", np.arange(50, dtype=np.float32)[None])),
              ("complex radiograph", _image_file(folder, "complex.nrrd", (phantom + 1j * phantom).astype(np.complex64)))]
    return files


def _ct_files(folder: Path) -> list[tuple[str, Path]]:
    files = []
    for suffix in (".nii.gz", ".nrrd", ".mha"):
        files += _bytes_variants(folder, suffix, CASE.ct_path.read_bytes())
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(CASE.ct_path))).astype(np.float32)
    files += [("2D CT", _image_file(folder, "slice.nrrd", ct[ct.shape[0] // 2])),
              ("inf in CT", _image_file(folder, "inf_ct.nrrd", np.where(ct > 3000, np.inf, ct))),
              ("RGB CT", _image_file(folder, "rgb_ct.nrrd", np.stack([ct[:8]] * 3, axis=-1), vector=True)),
              ("one-voxel CT", _image_file(folder, "voxel.nrrd", np.zeros((1, 1, 1), np.float32))),
              ("4D CT", _image_file(folder, "4d.nrrd", np.zeros((2, 3, 4, 5), np.float32)))]
    return files


def _json_variants(folder: Path, stem: str, valid: dict) -> list[tuple[str, Path]]:
    """A JSON document with each top-level key missing, the wrong type, NaN; plus garbage."""
    variants = {"not JSON": "{not json", "a list": "[]", "a number": "3", "null": "null", "empty": ""}
    for key in valid:
        variants[f"no {key}"] = json.dumps({k: v for k, v in valid.items() if k != key})
        variants[f"{key} a string"] = json.dumps({**valid, key: "text"})
        variants[f"{key} NaN"] = json.dumps({**valid, key: math.nan})
        variants[f"{key} null"] = json.dumps({**valid, key: None})
    paths = []
    for index, (label, text) in enumerate(variants.items()):
        path = folder / f"{stem}{index}.json"
        path.write_text(text)
        paths.append((f"{stem}: {label}", path))
    return paths


def cases(folder: Path) -> list[tuple[str, list]]:
    """(what, xrecon arguments) of every malformed input."""
    out = folder / "out"
    geometry = preset_geometry("ap", isocenter_ras_mm=(0, 0, 0), size_px=(80, 64), pixel_spacing_mm=(2.0, 2.0))
    valid_geometry = folder / "geometry.json"
    valid_geometry.write_text(json.dumps(geometry.to_dict()))
    png = folder / "valid.png"
    result = []
    for label, path in _radiograph_files(folder):
        result.append((f"reconstruct: {label}", ["reconstruct", "--image", path, "--geometry", valid_geometry,
                                                  "--out", out / "r"]))
    for label, path in _ct_files(folder):
        result.append((f"info: {label}", ["info", "--ct", path]))
    for label, path in _bytes_variants(folder, ".seg.nrrd", CASE.labels_path.read_bytes()) + _bytes_variants(
            folder, "_labels.nii.gz", CASE.labels_path.read_bytes()):
        result.append((f"info --labels: {label}", ["info", "--ct", CASE.ct_path, "--labels", path,
                                                   "--labels-table", CASE.table_path]))
        result.append((f"generate --labels: {label}", ["generate", "--ct", CASE.ct_path, "--labels", path,
                                                       "--labels-table", CASE.table_path, "--views", "1",
                                                       "--out", out / "gl"]))
    tables = {"empty": "", "header only": "id,structure\n", "ids not numbers": "id,structure\nA,femur_left\n",
              "duplicate ids": "id,structure\n1,sacrum\n1,femur_left\n", "no name": "id,structure\n1,\n",
              "binary": np.random.default_rng(5).bytes(200).decode("latin-1")}
    for label, text in tables.items():
        path = folder / f"table_{len(text)}_{abs(hash(label)) % 1000}.csv"
        path.write_text(text, encoding="latin-1")
        result.append((f"info --labels-table: {label}", ["info", "--ct", CASE.ct_path, "--labels", CASE.labels_path,
                                                         "--labels-table", path]))
    result.append(("render: CT as labels", ["render", "--ct", CASE.ct_path, "--labels", folder / "random.nrrd",
                                            "--labels-table", CASE.table_path, "--out", out / "a"]))
    # the keys a geometry must have, and the informational one that is read where present
    essential = {key: value for key, value in geometry.to_dict().items()
                 if key not in ("preset", "lao_deg", "cranial_deg", "source_to_detector_mm", "source_to_isocenter_mm")}
    geometries = _json_variants(folder, "geometry", essential)
    for index, value in enumerate(("text", math.nan, -math.inf)):
        path = folder / f"isocentre{index}.json"
        path.write_text(json.dumps({**essential, "source_to_isocenter_mm": value}))
        geometries.append((f"geometry: source_to_isocenter_mm {value!r}", path))
    for label, path in geometries:
        result.append((f"reconstruct: {label}", ["reconstruct", "--image", png, "--geometry", path, "--out", out / "g"]))
    recon = folder / "recon"
    recon.mkdir()
    (recon / "bad.vtk").write_bytes(np.random.default_rng(3).bytes(500))
    summary = {"format": "xrecon-reconstruction/1", "method": "depth",
               "structures": {"vertebrae_L3": {"found": True, "file": "bad.vtk"}}}
    for label, path in _json_variants(folder, "reconstruction", summary):
        target = recon / f"case_{path.stem}"
        target.mkdir()
        (target / "reconstruction.json").write_bytes(path.read_bytes())
        (target / "bad.vtk").write_bytes((recon / "bad.vtk").read_bytes())
        result.append((f"evaluate: {label}", ["evaluate", "--recon", target, "--case", "abdomen-pelvis",
                                              "--out", out / "m.json"]))
    result.append(("evaluate: no reconstruction folder", ["evaluate", "--recon", folder / "nowhere", "--case",
                                                          "abdomen-pelvis", "--out", out / "m.json"]))
    for label, path in _json_variants(folder, "markups", {"markups": [{"type": "Fiducial", "controlPoints": []}]}):
        result.append((f"render: {label}", ["render", "--case", "abdomen-pelvis", "--landmarks", path,
                                            "--detector-size-px", "32", "32", "--out", out / "l"]))
    bundle = folder / "bundle"
    for label, path in _json_variants(folder, "metadata", {"xrecon": {"format": "xrecon-depth/3"},
                                                           "network_data_format": {}}):
        target = bundle / path.stem
        (target / "configs").mkdir(parents=True)
        (target / "configs" / "metadata.json").write_bytes(path.read_bytes())
        result.append((f"reconstruct --bundle: {label}", ["reconstruct", "--image", png, "--geometry", valid_geometry,
                                                          "--bundle", target, "--out", out / "b"]))
    dataset = folder / "dataset"
    for label, path in _json_variants(folder, "dataset", {"schema_version": 1, "settings": {}}):
        target = dataset / path.stem
        target.mkdir(parents=True)
        (target / "dataset.json").write_bytes(path.read_bytes())
        result.append((f"train: {label}", ["train", "--dataset", target, "--out", out / "t", "--device", "cpu"]))
    for value in ("-1", "0", "nan", "inf", "1e9"):  # 0 is refused everywhere below but by --ct-spacing-mm
        result.append((f"reconstruct --spacing-mm {value}", ["reconstruct", "--image", png, "--geometry", valid_geometry,
                                                             "--spacing-mm", value, "--out", out / "s"]))
        result.append((f"reconstruct --field-of-view-mm {value}", ["reconstruct", "--image", png,
                                                                   "--field-of-view-mm", value, "--out", out / "f"]))
        for option in ("--source-to-isocenter-mm", "--energy-kev", "--bone-density"):
            result.append((f"render {option} {value}", ["render", "--case", "abdomen-pelvis", option, value,
                                                        "--detector-size-px", "32", "32", "--out", out / "n"]))
        result.append((f"render --pixel-spacing-mm {value}", ["render", "--case", "abdomen-pelvis", "--pixel-spacing-mm",
                                                              value, value, "--detector-size-px", "32", "32",
                                                              "--out", out / "p"]))
        if value != "0":  # 0 keeps every CT's grid
            result.append((f"generate --ct-spacing-mm {value}", ["generate", "--case", "abdomen-pelvis", "--views", "1",
                                                                 "--ct-spacing-mm", value, "--out", out / "d"]))
        result.append((f"demo --spacing-mm {value}", ["demo", "--spacing-mm", value, "--out", out / "demo"]))
    for value in ("nan", "-1", "2", "inf"):
        for option in ("--threshold", "--presence-threshold"):
            result.append((f"reconstruct {option} {value}", ["reconstruct", "--image", png, "--geometry",
                                                             valid_geometry, option, value, "--out", out / "t"]))
    for value in ("nan", "inf", "999", "-181"):
        result.append((f"reconstruct --lao {value}", ["reconstruct", "--image", png, "--field-of-view-mm", "300",
                                                      "--lao", value, "--out", out / "o"]))
    for setting in ("epochs=-1", "epochs=0", "learning_rate=nan", "learning_rate=-1", "batch_size=0", "downsample=3",
                    "features=[]", "epochs=\"ten\"", "min_visible_px=-5"):
        result.append((f"train --set {setting}", ["train", "--dataset", folder / "dataset" / "dataset0", "--out",
                                                  out / "tt", "--set", setting, "--device", "cpu"]))
    for views in ("0", "-3", "1e99", "nan"):
        result.append((f"generate --views {views}", ["generate", "--case", "abdomen-pelvis", "--views", views,
                                                     "--out", out / "v"]))
    for strength in ("nan", "-1", "1.5", "inf"):
        result.append((f"generate --hip-pose {strength}", ["generate", "--case", "abdomen-pelvis", "--views", "1",
                                                           "--hip-pose", strength, "--out", out / "hp"]))
    atlas = [CASE.ct_path, CASE.labels_path, CASE.table_path]
    for label, path in _ct_files(folder)[:6]:  # empty, random, truncated NIfTI and NRRD
        result.append((f"labels --ct: {label}", ["labels", "--ct", path, "--atlas", *atlas, "--out", out / "pl"]))
        result.append((f"labels --atlas CT: {label}", ["labels", "--ct", CASE.ct_path, "--atlas", path, *atlas[1:],
                                                       "--out", out / "pa"]))
    for label, path in _bytes_variants(folder, "_atlas_labels.nii.gz", CASE.labels_path.read_bytes()):
        result.append((f"labels --atlas labels: {label}", ["labels", "--ct", CASE.ct_path, "--atlas", CASE.ct_path,
                                                           path, CASE.table_path, "--out", out / "pb"]))
    for option, value in (("--spacing-mm", "0.2"), ("--spacing-mm", "nan"), ("--spacing-mm", "-3"),
                          ("--reach-mm", "nan"), ("--bone-hu", "inf"), ("--structures", "femur_middle")):
        result.append((f"labels {option} {value}", ["labels", "--ct", CASE.ct_path, "--atlas", *atlas, option, value,
                                                    "--out", out / "pn"]))
    for setting in ("epochs=0", "features=[]", "learning_rate=nan", "downsample=3", "colour=1"):
        result.append((f"train --task landmarks --set {setting}", ["train", "--task", "landmarks", "--dataset",
                                                                    folder / "dataset" / "dataset0", "--out",
                                                                    out / "tl", "--set", setting, "--device", "cpu"]))
    hip_model = resources_dir() / "ShapeModels" / "hip.npz"
    models = _bytes_variants(folder, ".npz", hip_model.read_bytes())
    with np.load(hip_model) as data:
        arrays = dict(data)
    for index, (label, change) in enumerate((("triangles beyond the vertices", {"triangles": arrays["triangles"] + 10_000}),
                          ("NaN in the mean", {"mean_mm": np.full_like(arrays["mean_mm"], np.nan)}),
                          ("modes of another size", {"modes": arrays["modes"][:, :5]}),
                          ("a pickled object array", {"mean_mm": np.array([{"a": 1}], dtype=object)}),
                          ("another format", {"header": np.array(json.dumps({"format": "x"}))}))):
        path = folder / f"model_{index}.npz"
        np.savez(path, **{**arrays, **change})
        models.append((f"shape model: {label}", path))
    for label, path in models:
        result.append((f"ssm info: {label}", ["ssm", "info", path]))
        result.append((f"ssm sample: {label}", ["ssm", "sample", path, "--out", out / "ss"]))
    for option, value in (("--count", "0"), ("--count", "-2"), ("--limit-sd", "nan"), ("--limit-sd", "-1")):
        result.append((f"ssm sample {option} {value}", ["ssm", "sample", "femur", option, value, "--out", out / "sv"]))
    result.append(("ssm sample --side of a midline bone", ["ssm", "sample", "sacrum", "--side", "left",
                                                           "--out", out / "sm"]))
    result.append(("ssm info: no such model", ["ssm", "info", folder / "nowhere.npz"]))
    result.append(("ssm build: --out not .npz", ["ssm", "build", "femur", "--out", folder / "femur.txt"]))
    result.append(("ssm build vertebra without labels", ["ssm", "build", "vertebra", "--out", folder / "v.npz"]))
    result.append(("ssm landmarks: --out not .mrk.json", ["ssm", "landmarks", "--labels", CASE.labels_path,
                                                          "--labels-table", CASE.table_path, "--out", folder / "l.json"]))
    for label, path in _bytes_variants(folder, "_ssm_labels.nii.gz", CASE.labels_path.read_bytes()):
        result.append((f"ssm landmarks --labels: {label}", ["ssm", "landmarks", "--labels", path, "--labels-table",
                                                            CASE.table_path, "--out", folder / "l.mrk.json"]))
    result.append(("render --source-to-detector-mm below the isocentre",
                   ["render", "--case", "abdomen-pelvis", "--source-to-isocenter-mm", "900", "--source-to-detector-mm",
                    "500", "--detector-size-px", "32", "32", "--out", out / "x"]))
    return result


@pytest.mark.slow
def test_every_malformed_input_gets_status_2_and_one_line(tmp_path, capfd):
    failures = []
    all_cases = cases(tmp_path)
    assert len(all_cases) >= 200, len(all_cases)
    for what, args in all_cases:
        try:
            status, _, err = xrecon_in_process(capfd, *args)
        except Exception as error:  # noqa: BLE001 - the point: any exception is a traceback for the user
            failures.append(f"{what}: raised {type(error).__name__}: {error}")
            continue
        lines = [line for line in err.strip().splitlines() if line.startswith("xrecon")]
        if status != 2 or not lines or "Traceback" in err:
            failures.append(f"{what}: exit {status}, stderr {err.strip()[-300:]!r}")
    assert not failures, f"{len(failures)} of {len(all_cases)} inputs:\n" + "\n".join(failures)
