"""One property test for every bijection: inverse round trip and log-det vs autograd (float64)."""

import math

import pytest
import torch

from mlmol import flows
from mlmol.flows import AffineCoupling, Chain, SplineCoupling, Standardize


def _randomise(module: torch.nn.Module, scale: float = 0.5) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


BIJECTIONS = {
    "standardize": lambda d: Standardize(torch.linspace(-1, 2, d), torch.linspace(0.3, 2.0, d)),
    "standardize-periodic": lambda d: Standardize(torch.tensor([0.5, 3.0, -1.0, -3.1][:d]), torch.full((d,), 0.1),
                                                  periodic=[1, 3]),
    "affine": lambda d: AffineCoupling([0, 2], [1, 3], hidden=(16, 16)),
    "spline": lambda d: SplineCoupling([1, 3], [0, 2], hidden=(16,), bins=6, bound=3.0),
    "chain": lambda d: Chain([AffineCoupling([0, 2], [1, 3], (8,)), SplineCoupling([1, 3], [0, 2], (8,), bound=3.0),
                              Standardize(torch.zeros(d), 2 * torch.ones(d))]),
    "affine-angles": lambda d: AffineCoupling([0, 2], [1, 3], hidden=(16,), angles=[1]),
    "spline-angles": lambda d: SplineCoupling([1, 3], [0, 2], hidden=(16,), bound=3.0, angles=[0, 2]),
    "realnvp": lambda d: flows.RealNVP(d, blocks=2, hidden=(16, 16), loc=torch.ones(d), scale=torch.ones(d)).transform,
    "spline-flow": lambda d: flows.NeuralSpline(d, blocks=2, hidden=(16,), bound=4.0).transform,
}


@pytest.mark.parametrize("name", sorted(BIJECTIONS))
def test_bijection_contract(name):
    torch.manual_seed(0)
    dim = 4
    bijection = BIJECTIONS[name](dim).double()
    _randomise(bijection, 0.3)
    # points inside and outside a spline's bound (where it is the identity)
    z = torch.cat([torch.randn(20, dim, dtype=torch.float64), 5 * torch.randn(5, dim, dtype=torch.float64)])
    x, ladj = bijection(z)
    assert x.shape == z.shape and ladj.shape == (len(z),)
    z_back, ladj_inv = bijection.inverse(x)
    torch.testing.assert_close(z_back, z, atol=1e-8, rtol=1e-8)  # stacked maps lose a few digits
    torch.testing.assert_close(ladj_inv, -ladj, atol=1e-9, rtol=1e-9)
    for i in range(len(z)):
        jac = torch.autograd.functional.jacobian(lambda v: bijection(v[None])[0][0], z[i])
        assert math.isclose(torch.linalg.slogdet(jac)[1].item(), ladj[i].item(), abs_tol=1e-8)
    # the transform is not the identity after randomising (the test would be vacuous)
    assert not torch.allclose(x, z)


@pytest.mark.parametrize("family", ["realnvp", "spline"])
def test_flow_density_normalised_at_every_temperature(family):
    """∫ q_τ(x) dx = 1 by quadrature in 2D, and sample_with_log_prob agrees with log_prob."""
    torch.manual_seed(0)
    flow = flows.build({"kind": family, "dim": 2, "blocks": 2, "hidden": [16]}).double()
    _randomise(flow, 0.3)
    for tau in (0.5, 1.0, 2.0):
        axis = torch.linspace(-12, 12, 601, dtype=torch.float64)
        xx = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
        mass = flow.log_prob(xx, tau=tau).exp().sum() * (axis[1] - axis[0]) ** 2
        assert abs(mass.item() - 1) < 2e-3
        x, log_q = flow.sample_with_log_prob(100, tau=tau)
        torch.testing.assert_close(log_q, flow.log_prob(x, tau=tau), atol=1e-9, rtol=1e-9)


def test_coupling_needs_two_dimensions():
    from mlmol import MlmolError

    with pytest.raises(MlmolError, match="dim >= 2"):
        flows.RealNVP(1)


def test_internal_coordinates_round_trip_and_log_det():
    """Z-matrix bijection: exact round trips, invariance to rigid motions, full 3N log-det vs autograd (float64)."""
    from mlmol.flows.internal import InternalCoordinates

    bonds = [(0, 1), (1, 2), (2, 3), (1, 4), (4, 5), (4, 6), (3, 7)]  # a branched 8-atom tree
    ic = InternalCoordinates(8, bonds).double()
    g = torch.Generator().manual_seed(0)
    x = 0.15 * torch.randn(6, 24, generator=g, dtype=torch.float64)
    z, ladj_inv = ic.inverse(x)
    assert z.shape == (6, 18)
    x_canonical, ladj = ic(z)
    torch.testing.assert_close(ladj, -ladj_inv)
    torch.testing.assert_close(ic.inverse(x_canonical)[0], z)
    # a rotated and shifted copy has the same internal coordinates (proper rotation: torsions keep their sign)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.linalg.det(q))
    moved = (x.reshape(6, 8, 3) @ q.T + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)).reshape(6, 24)
    torch.testing.assert_close(ic.inverse(moved)[0], z)
    # log-det of the full map (translation t, ZYZ Euler angles, internal coordinates) -> 3N Cartesians,
    # whose Haar measure is sin(beta): ladj must equal log|det| - log sin(beta)
    def rotation(a, b, c):
        def rz(t):
            one, zero = torch.ones_like(t), torch.zeros_like(t)
            return torch.stack([torch.stack([t.cos(), -t.sin(), zero]), torch.stack([t.sin(), t.cos(), zero]),
                                torch.stack([zero, zero, one])])

        cb, sb, one, zero = b.cos(), b.sin(), torch.ones_like(b), torch.zeros_like(b)
        ry = torch.stack([torch.stack([cb, zero, sb]), torch.stack([zero, one, zero]), torch.stack([-sb, zero, cb])])
        return rz(a) @ ry @ rz(c)

    def full(v):
        y = ic(v[6:][None])[0][0].reshape(8, 3)
        return (y @ rotation(*v[3:6]).T + v[:3]).reshape(24)

    for i in range(len(z)):
        pose = torch.tensor([0.3, -0.2, 0.1, 0.7, 1.1, -0.4], dtype=torch.float64)
        jac = torch.autograd.functional.jacobian(full, torch.cat([pose, z[i]]))
        assert math.isclose(torch.linalg.slogdet(jac)[1].item() - math.log(math.sin(1.1)), ladj[i].item(),
                            abs_tol=1e-8)


def test_circular_shift_is_a_rotation_of_the_circle():
    from mlmol.flows import CircularShift

    shift = CircularShift([1, 2], 2.5)
    x = (torch.rand(100, 3, dtype=torch.float64) * 2 - 1) * math.pi
    y, ladj = shift(x)
    assert torch.all(y[:, 1:] >= -math.pi) and torch.all(y[:, 1:] < math.pi) and torch.equal(y[:, 0], x[:, 0])
    torch.testing.assert_close(torch.cos(y[:, 1:]), torch.cos(x[:, 1:] + 2.5))
    torch.testing.assert_close(shift.inverse(y)[0], x)
    assert torch.all(ladj == 0)


def test_molecular_flow_density_and_round_trip():
    """Internal-coordinate flow, float64: log q of its own samples, inverse round trip, torsions on the circle."""
    bonds = [(0, 1), (1, 2), (2, 3), (1, 4), (4, 5), (4, 6), (3, 7), (3, 8)]
    g = torch.Generator().manual_seed(3)
    data = 0.15 * torch.randn(1, 27, generator=g) + 0.01 * torch.randn(200, 27, generator=g)
    flow = flows.MolecularFlow(9, bonds, data=data, blocks=2, hidden=(16,)).double()
    _randomise(flow, 0.1)
    x, log_q = flow.sample_with_log_prob(50)
    assert x.shape == (50, 27) and flow.dim == 21 and flow.event_dim == 27
    torch.testing.assert_close(flow.log_prob(x), log_q, atol=1e-8, rtol=1e-8)
    z, _ = flow.transform.inverse(x)
    torch.testing.assert_close(flow.transform(z)[0], x, atol=1e-10, rtol=1e-10)
    torsions = z[:, flow._circular]
    assert torsions.shape[1] + len(flow.spec["narrow"]) == 6 and torch.all(torsions.abs() <= math.pi)
    assert 0 < len(flow.spec["narrow"]) < 6  # both kinds of torsion are exercised
    rebuilt = flows.build(flow.spec).double()
    rebuilt.load_state_dict(flow.state_dict())
    torch.testing.assert_close(rebuilt.log_prob(x), log_q, atol=1e-8, rtol=1e-8)
