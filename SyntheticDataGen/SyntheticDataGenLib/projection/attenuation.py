"""Hounsfield units to linear attenuation coefficients μ (1/mm) for DRR rendering.

Two models, both linear in two *basis volumes* of the CT, so that a DRR at any energy and bone
density is a weighted sum of two basis DRRs rendered once (:func:`basis_volumes`,
:func:`mu_weights`):

* ``linear`` (the default of DESIGN.md): μ = μ_water(E) · max(0, 1 + HU/1000). It scales
  every tissue like water, so bone contrast does not change with energy.
* ``two-material``: below 0 HU a voxel is water of lower density (down to air); above 0 HU it is
  a volume mix of water and cortical bone along the line through water (0 HU) and cortical bone
  (1900 HU, 1.92 g/cm³), extrapolated beyond. Each material has its own mass attenuation at the
  effective energy, so bone darkens a low-kV image more.

In both, ``bone_density`` scales the part of the HU above water (0 HU), the way osteoporosis or
a denser skeleton would change it.

Mass attenuation coefficients (cm²/g) are NIST XCOM values for liquid water and ICRU-44
cortical bone, interpolated log-log between tabulated energies.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import XreconInputError

_ENERGIES_KEV = np.array([20.0, 30.0, 40.0, 50.0, 60.0, 80.0, 100.0, 150.0])
_WATER_CM2_PER_G = np.array([0.8096, 0.3756, 0.2683, 0.2269, 0.2059, 0.1837, 0.1707, 0.1505])
_BONE_CM2_PER_G = np.array([4.001, 1.331, 0.6655, 0.4242, 0.3148, 0.2229, 0.1855, 0.1480])
_BONE_DENSITY_G_PER_CM3 = 1.92
_BONE_HU = 1900.0

DEFAULT_ENERGY_KEV = 60.0
# Effective energy of a filtered diagnostic beam as a fraction of its peak voltage (a rule of thumb).
_EFFECTIVE_ENERGY_PER_KVP = 0.4


def _interpolate(table: np.ndarray, energy_kev: float) -> float:
    if not _ENERGIES_KEV[0] <= energy_kev <= _ENERGIES_KEV[-1]:
        raise XreconInputError(
            f"effective energy {energy_kev:g} keV is outside {_ENERGIES_KEV[0]:g}-{_ENERGIES_KEV[-1]:g} keV")
    return float(np.exp(np.interp(np.log(energy_kev), np.log(_ENERGIES_KEV), np.log(table))))


def effective_energy_kev(kvp: float) -> float:
    """Effective photon energy (keV) of a diagnostic beam at a tube voltage (kVp)."""
    return _EFFECTIVE_ENERGY_PER_KVP * float(kvp)


def water_mu_per_mm(energy_kev: float = DEFAULT_ENERGY_KEV) -> float:
    """Linear attenuation coefficient of water (1/mm) at an effective energy."""
    return _interpolate(_WATER_CM2_PER_G, energy_kev) / 10.0


def basis_volumes(hu: torch.Tensor) -> torch.Tensor:
    """The two basis volumes (2, ...) of a CT: water-equivalent density below 0 HU, and HU above 0 / 1900.

    μ = w₀·basis[0] + w₁·basis[1] with weights from :func:`mu_weights`.
    """
    hu = torch.as_tensor(hu, dtype=torch.float32)
    return torch.stack([torch.clamp(1.0 + torch.clamp(hu, max=0.0) / 1000.0, min=0.0),
                        torch.clamp(hu, min=0.0) / _BONE_HU])


def mu_weights(*, model: str = "linear", energy_kev: float = DEFAULT_ENERGY_KEV,
               bone_density: float = 1.0) -> tuple[float, float]:
    """Weights (1/mm) of the two basis volumes for an attenuation model, energy and bone density."""
    if bone_density <= 0:
        raise XreconInputError(f"bone density multiplier must be positive, got {bone_density:g}")
    water = water_mu_per_mm(energy_kev)
    if model == "linear":
        return water, water * _BONE_HU / 1000.0 * bone_density
    if model == "two-material":
        bone = _interpolate(_BONE_CM2_PER_G, energy_kev) / 10.0 * _BONE_DENSITY_G_PER_CM3
        return water, (bone - water) * bone_density
    raise XreconInputError(f"unknown attenuation model {model!r}; choose linear or two-material")


def hu_to_mu(hu: torch.Tensor, *, model: str = "linear", energy_kev: float = DEFAULT_ENERGY_KEV,
             bone_density: float = 1.0) -> torch.Tensor:
    """Linear attenuation μ (1/mm, float32) of each voxel from its HU value.

    Args:
        hu: CT values in Hounsfield units, any shape.
        model: ``linear`` or ``two-material`` (see the module docstring).
        energy_kev: effective photon energy; use :func:`effective_energy_kev` for a tube voltage.
        bone_density: multiplier of the HU above water (1 = as scanned).
    """
    weights = mu_weights(model=model, energy_kev=energy_kev, bone_density=bone_density)
    basis = basis_volumes(hu)
    return weights[0] * basis[0] + weights[1] * basis[1]
