"""HU to attenuation: the linear default, the two-material model, energy and bone density."""

import pytest
import torch

from SyntheticDataGenLib.projection.attenuation import effective_energy_kev, hu_to_mu, water_mu_per_mm
from SyntheticDataGenLib.errors import XreconInputError


def test_linear_model_is_the_design_default():
    hu = torch.tensor([-2000.0, -1000.0, -500.0, 0.0, 1000.0])
    water = water_mu_per_mm(60.0)
    assert water == pytest.approx(0.02059, rel=1e-4)  # NIST: 0.2059 cm²/g at 60 keV
    torch.testing.assert_close(hu_to_mu(hu), torch.tensor([0.0, 0.0, 0.5, 1.0, 2.0]) * water)


def test_bone_density_scales_only_what_is_denser_than_water():
    hu = torch.tensor([-500.0, 0.0, 1000.0])
    dense = hu_to_mu(hu, bone_density=1.5)
    plain = hu_to_mu(hu)
    torch.testing.assert_close(dense[:2], plain[:2])
    assert dense[2] == pytest.approx(water_mu_per_mm() * 2.5)


def test_two_material_model_makes_bone_contrast_depend_on_energy():
    hu = torch.tensor([0.0, 1000.0])
    low = hu_to_mu(hu, model="two-material", energy_kev=40.0)
    high = hu_to_mu(hu, model="two-material", energy_kev=100.0)
    assert low[0] == pytest.approx(water_mu_per_mm(40.0)) and high[0] == pytest.approx(water_mu_per_mm(100.0))
    assert low[1] / low[0] > high[1] / high[0] > 1.0, "bone stands out more at low energy"
    # at the bone end point both models agree with tabulated cortical bone (ICRU-44, 1.92 g/cm³)
    cortical = hu_to_mu(torch.tensor([1900.0]), model="two-material", energy_kev=60.0)
    assert cortical.item() == pytest.approx(0.3148 * 1.92 / 10, rel=1e-4)


def test_tube_voltage_and_bad_parameters():
    assert effective_energy_kev(100) == pytest.approx(40.0)
    with pytest.raises(XreconInputError, match="outside"):
        hu_to_mu(torch.zeros(1), energy_kev=5.0)
    with pytest.raises(XreconInputError, match="positive"):
        hu_to_mu(torch.zeros(1), bone_density=0.0)
    with pytest.raises(XreconInputError, match="unknown attenuation model"):
        hu_to_mu(torch.zeros(1), model="spectral")


@pytest.mark.parametrize("model", ["linear", "two-material"])
def test_basis_volumes_rebuild_every_model_at_any_energy_and_density(model):
    from SyntheticDataGenLib.projection.attenuation import basis_volumes, mu_weights

    hu = torch.linspace(-1500, 3000, 301)
    basis = basis_volumes(hu)
    for energy, density in [(30.0, 1.0), (60.0, 0.7), (110.0, 1.4)]:
        w0, w1 = mu_weights(model=model, energy_kev=energy, bone_density=density)
        torch.testing.assert_close(w0 * basis[0] + w1 * basis[1],
                                   hu_to_mu(hu, model=model, energy_kev=energy, bone_density=density))
