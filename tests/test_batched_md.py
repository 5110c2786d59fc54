"""Batched Langevin dynamics (BAOAB over replicas): the Boltzmann distribution of a harmonic
oscillator, seeded reproducibility, resume equal to an uninterrupted run, blow-ups caught with the
last good state kept."""

import numpy as np
import pytest
import torch

from mlmol.errors import MlmolError
from mlmol.samplers.batched import BatchedLangevin, BlowUp
from mlmol.systems import Energy


class Harmonic(Energy):
    """u = k |x|² / 2 in units of kT (kT = 1): Var(x_i) = 1 / k exactly."""

    name = "harmonic"

    def __init__(self, dim: int = 2, k: float = 4.0):
        super().__init__(dim)
        self.k = k

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.k * (x**2).sum(-1)


class Slope(Energy):
    """A constant push towards +x0 and no energy at all beyond x0 = 2 (NaN): every replica blows up."""

    name = "slope"

    def __init__(self):
        super().__init__(1)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        u = -20.0 * x[..., 0]
        return torch.where(x[..., 0] > 2.0, torch.full_like(u, float("nan")), u)


def test_baoab_samples_the_harmonic_oscillators_exact_variance_at_a_large_time_step():
    system = Harmonic(k=4.0)  # ω = 2: ω dt = 1, far from the continuous-time limit
    md = BatchedLangevin(system, torch.zeros(2000, 2, dtype=torch.float64), timestep=0.5, friction=1.0, seed=0)
    md.step(100)
    x = md.run(100, interval=10).reshape(-1, 2)  # 200,000 samples of 2,000 independent replicas
    variance = x.var(0)
    # BAOAB's configurational sampling is exact for a harmonic oscillator at any stable step; the frames
    # of one replica are nearly independent at this spacing, so the standard error is about 0.3%
    torch.testing.assert_close(variance, torch.full((2,), 0.25, dtype=torch.float64), rtol=0.015, atol=0)


def test_the_same_seed_gives_the_same_trajectory_and_resume_continues_it_bit_for_bit():
    system = Harmonic()
    start = torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    straight = BatchedLangevin(system, start, timestep=0.1, seed=5)
    straight.step(20)
    again = BatchedLangevin(system, start, timestep=0.1, seed=5)
    again.step(10)
    saved = again.state()
    resumed = BatchedLangevin(system, start, timestep=0.1, seed=99)  # another seed: the state replaces it
    resumed.restore(saved)
    resumed.step(10)
    assert resumed.steps_done == straight.steps_done == 20
    assert torch.equal(resumed.x, straight.x) and torch.equal(resumed.v, straight.v)
    other = BatchedLangevin(system, start, timestep=0.1, seed=6)
    other.step(20)
    assert not torch.equal(other.x, straight.x)


def test_a_blow_up_names_the_replica_and_step_and_keeps_the_last_good_state():
    md = BatchedLangevin(Slope(), torch.zeros(4, 1, dtype=torch.float64), timestep=0.05, seed=0)
    with pytest.raises(BlowUp, match=r"replica \d of 4 blew up at step \d+"):
        md.step(1000)
    assert bool((md.x <= 2.0).all()) and torch.isfinite(md.u).all()  # the state before the bad step
    with pytest.raises(MlmolError, match="must be positive"):
        BatchedLangevin(Harmonic(), torch.zeros(2, 2), timestep=0.0)
    with pytest.raises(MlmolError, match=r"\[replicas, 2\]"):
        BatchedLangevin(Harmonic(), torch.zeros(2, 3), timestep=0.1)


def test_alanine_dipeptide_replicas_stay_finite_and_near_300_kelvin():
    pytest.importorskip("openmm")
    from mlmol.systems.molecules import alanine_dipeptide
    from mlmol.units import BOLTZMANN_KJ_MOL_K

    ala2 = alanine_dipeptide(backend="torch")
    start = torch.tensor(ala2.positions)[None].repeat(32, 1)
    md = BatchedLangevin(ala2, start, timestep=0.001, friction=5.0, masses=torch.tensor(ala2.masses), seed=0)
    md.step(1000)  # 1 ps at 1 fs: from the minimum, equipartition first halves the kinetic energy
    kinetic = []
    for _ in range(50):
        md.step(10)
        # BAOAB's velocities right after the friction-and-noise update are the thermal ones (the full-step
        # velocities are off by O(dt²): 5% low at 1 fs with hydrogens, measured): undo the last half kick
        v = md.v - 0.5 * md.dt * md.force / md.masses
        kinetic.append(0.5 * (md.masses * v**2).sum(-1))  # kJ/mol per replica
    temperature = 2 * torch.stack(kinetic).mean() / (ala2.dim * BOLTZMANN_KJ_MOL_K)
    assert torch.isfinite(md.u).all() and abs(float(temperature) - 300.0) < 10.0  # 32 × 66 dof × 50: about ±3 K


class TiltedWell(Energy):
    """u(x) = 8 (x² − 1)² + 0.5 x in kT: an 8 kT barrier that plain dynamics at kT = 1 rarely crosses."""

    name = "tilted well"

    def __init__(self):
        super().__init__(1)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return 8.0 * (x[..., 0] ** 2 - 1.0) ** 2 + 0.5 * x[..., 0]


def test_the_exchange_step_keeps_each_states_distribution_in_temperature_and_in_hamiltonian_ladders():
    """Exact samples of two states stay exact after one swap round (detailed balance), with the swaps of
    all chains drawn together; always-accepted swaps would exchange the two distributions."""
    from mlmol.samplers.exchange import exchange

    g = torch.Generator().manual_seed(0)
    n = 40_000
    # temperatures: u = x²/2 at factors 1 and 3
    scales = torch.tensor([1.0, 3.0], dtype=torch.float64)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64) * scales.sqrt()
    reduced = 0.5 * x[:, :, None] ** 2 / scales  # [chains, slot, state]
    perm, accepted = exchange(reduced, 0, g)
    after = torch.gather(x, 1, perm)
    torch.testing.assert_close(after.var(0), scales, rtol=0.03, atol=0)  # standard error about 0.7%
    assert 0.3 < float(accepted.double().mean()) < 0.9
    # umbrellas: u = x²/2 + (x − c_k)²/2 with c = (0, 2): state k is N(c_k / 2, 1/2)
    centres = torch.tensor([0.0, 2.0], dtype=torch.float64)
    x = centres / 2 + torch.randn(n, 2, generator=g, dtype=torch.float64) * 0.5**0.5
    reduced = 0.5 * x[:, :, None] ** 2 + 0.5 * (x[:, :, None] - centres) ** 2
    perm, accepted = exchange(reduced, 0, g)
    after = torch.gather(x, 1, perm)
    torch.testing.assert_close(after.mean(0), centres / 2, atol=0.02, rtol=0)  # standard error 0.0035
    torch.testing.assert_close(after.var(0), torch.full((2,), 0.5, dtype=torch.float64), rtol=0.03, atol=0)
    assert 0.1 < float(accepted.double().mean()) < 0.9
    # odd parity with two states tries nothing
    perm, accepted = exchange(reduced[:5], 1, g)
    assert torch.equal(perm, torch.arange(2).repeat(5, 1)) and not bool(accepted.any())


def _tilted_well_exact(system) -> float:
    axis = torch.linspace(-2.5, 2.5, 20_001, dtype=torch.float64)
    p = torch.exp(-system.energy(axis[:, None]))
    return float(-torch.log(p[axis < 0].sum() / p[axis > 0].sum()))


def test_parallel_tempering_crosses_a_barrier_plain_dynamics_does_not_and_mbar_gets_the_exact_delta_f():
    from mlmol.samplers.exchange import ReplicaExchange, mbar_delta_f, temperature_ladder

    system = TiltedWell()
    exact = _tilted_well_exact(system)
    chains, states = 64, temperature_ladder(1.0, 8.0, 4)
    start = torch.ones(chains, 4, 1, dtype=torch.float64)  # every replica starts in the right well
    pt = ReplicaExchange(system, start, states, timestep=0.005, friction=5.0, seed=0, exchange_every=10)
    pt.step(2000)
    samples = pt.run(400, interval=20)
    left = samples.observed[..., 0] < 0  # [frames, chains, states]
    delta_f, stderr, details = mbar_delta_f(samples, left, seed=1)
    assert abs(delta_f - exact) < min(4 * stderr, 0.15), (delta_f, exact, stderr)
    assert 0.005 < stderr < 0.1 and details["effective_samples"] > 1000
    # state 0 alone agrees too, with a larger error
    alone = left[:, :, 0].double().mean()
    assert abs(float(-torch.log(alone / (1 - alone))) - exact) < 0.3
    assert bool((pt.acceptance() > 0.2).all())
    plain = BatchedLangevin(system, torch.ones(chains, 1, dtype=torch.float64), timestep=0.005, friction=5.0, seed=0)
    plain.step(10_000)
    assert float((plain.x < 0).double().mean()) < 0.2  # the same time without exchanges: most never left


def test_hamiltonian_exchange_between_umbrellas_gets_the_exact_delta_f_by_mbar():
    from mlmol.samplers.exchange import ReplicaExchange, mbar_delta_f, torsion_umbrellas

    system = TiltedWell()
    exact = _tilted_well_exact(system)
    # "torsion" umbrellas on x itself (radians), windows across the barrier
    centres = np.degrees(np.linspace(-1.5, 1.5, 13))[:, None]
    states = torsion_umbrellas([lambda x: x[..., 0]], centres, k=60.0)
    chains = 32
    start = torch.ones(chains, 13, 1, dtype=torch.float64)
    rex = ReplicaExchange(system, start, states, timestep=0.005, friction=5.0, seed=2, exchange_every=10)
    rex.step(1000)
    samples = rex.run(400, interval=20)  # 200 frames give a bootstrap error of 0.10-0.12: too near the bound below
    # each slot samples its window: the mean of x follows the centres
    means = samples.observed[..., 0].mean((0, 1))
    assert bool((means[1:] > means[:-1]).all())
    delta_f, stderr, _ = mbar_delta_f(samples, samples.observed[..., 0] < 0, seed=3)
    assert abs(delta_f - exact) < min(4 * stderr, 0.15), (delta_f, exact, stderr)
    assert 0.005 < stderr < 0.1 and bool((rex.acceptance() > 0.05).all())
    # the slot energies include each slot's bias; energies() takes it off again
    u, reduced = rex.energies()
    torch.testing.assert_close(u, system.energy(rex.md.x).reshape(chains, 13))
    torch.testing.assert_close(torch.diagonal(reduced, dim1=-2, dim2=-1), rex.md.u.reshape(chains, 13))


def _cut_run_equals_straight_run(make, cut: int, total: int) -> None:
    """A run stopped after ``cut`` steps and restored into an exchanger of another seed ends where an
    uninterrupted one of ``total`` steps does (positions, forces, swaps, rounds)."""
    straight = make(0)
    straight.step(total)
    first = make(0)
    first.step(cut)
    resumed = make(7)
    resumed.restore(first.state())
    resumed.step(total - cut)
    assert torch.equal(resumed.md.x, straight.md.x) and torch.equal(resumed.md.force, straight.md.force)
    assert torch.equal(resumed.accepted, straight.accepted) and resumed.rounds == straight.rounds > 0


def test_replica_exchange_resume_continues_bit_for_bit():
    from mlmol.samplers.exchange import ReplicaExchange, temperature_ladder

    _cut_run_equals_straight_run(lambda seed: ReplicaExchange(
        TiltedWell(), torch.ones(4, 3, 1, dtype=torch.float64), temperature_ladder(1, 4, 3), timestep=0.005,
        friction=5.0, seed=seed, exchange_every=3), cut=23, total=50)



def test_hydrogen_mass_repartitioning_keeps_the_total_mass_and_allows_4_fs():
    pytest.importorskip("openmm")
    from mlmol.systems.molecules import alanine_dipeptide

    ala2 = alanine_dipeptide(backend="torch")
    masses, heavy = ala2.masses, ala2.repartitioned_masses(3.024)
    hydrogens = [a.index for a in ala2.topology.atoms() if a.element.symbol == "H"]
    assert len(hydrogens) == 12 and abs(masses.sum() - heavy.sum()) < 1e-9 and (heavy[hydrogens] == 3.024).all()
    start = torch.tensor(ala2.positions)[None].repeat(8, 1)
    md = BatchedLangevin(ala2, start, timestep=0.004, masses=torch.tensor(heavy), seed=0)
    md.step(500)  # 2 ps at 4 fs: stable with repartitioned masses
    assert torch.isfinite(md.u).all()


def test_simulated_replicas_resume_bit_for_bit(tmp_path):
    pytest.importorskip("openmm")
    from mlmol.data import load_trajectory
    from mlmol.simulation import simulate_replicas
    from mlmol.systems.molecules import alanine_dipeptide

    ala2 = alanine_dipeptide(backend="torch")
    options = {"interval": 10, "replicas": 3, "scales": [1.0, 1.5], "equilibration": 50, "chunk": 2, "seed": 4}
    straight, acceptance = simulate_replicas(ala2, tmp_path / "a.dcd", 6, **options)
    assert straight.shape == (6, 3, 66) and len(acceptance) == 1
    simulate_replicas(ala2, tmp_path / "b.dcd", 4, **options)
    resumed, _ = simulate_replicas(ala2, tmp_path / "b.dcd", 6, resume=True, **options)
    torch.testing.assert_close(resumed, straight, rtol=0, atol=2e-6)  # DCD stores float32 coordinates
    assert load_trajectory(tmp_path / "b.dcd", ala2.topology).shape == (18, 66)  # time-major: 6 frames × 3
    with pytest.raises(MlmolError, match="already exists"):
        simulate_replicas(ala2, tmp_path / "a.dcd", 6, **options)


def test_simulate_with_the_torch_engine_from_the_command_line(tmp_path, capsys):
    pytest.importorskip("openmm")
    from mlmol.cli import main
    from mlmol.data import load_trajectory
    from mlmol.systems.molecules import alanine_dipeptide

    out = tmp_path / "pt.dcd"
    assert main(["simulate", "alanine-dipeptide", "--engine", "torch", "--replicas", "2", "--temperatures",
                 "300:400:2", "--hydrogen-mass", "3.024", "--timestep-fs", "4", "--frames", "3", "--interval", "20",
                 "--out", str(out)]) == 0
    assert "swap acceptance between neighbouring temperatures" in capsys.readouterr().out
    assert load_trajectory(out, alanine_dipeptide().topology).shape == (6, 66)
    for argv, message in [(["--replicas", "2"], "go with --engine torch"),
                          (["--engine", "torch", "--temperatures", "300:x:2"], "write LOW:HIGH:COUNT"),
                          (["--engine", "torch", "--replicas", "0"], "--replicas must be positive")]:
        assert main(["simulate", "alanine-dipeptide", *argv, "--frames", "2", "--out", str(tmp_path / "x.dcd")]) == 2
        assert message in capsys.readouterr().err


def test_training_data_from_the_batched_engine_is_seeded_and_shares_the_replicas_among_the_starts():
    pytest.importorskip("openmm")
    from mlmol.samplers import molecular_dynamics
    from mlmol.systems.molecules import PHI, alanine_dipeptide

    ala2 = alanine_dipeptide(backend="torch")
    starts = [{"phi": -80.0, "psi": 150.0}, {"phi": 60.0, "psi": 40.0}]
    options = {"interval": 25, "timestep_fs": 4.0, "hydrogen_mass": 3.024, "equilibration": 200, "starts": starts,
               "engine": "torch", "replicas": 6, "compile": False}
    a = molecular_dynamics(ala2, 40, seed=3, **options)
    b = molecular_dynamics(ala2, 40, seed=3, **options)
    assert a.shape == (40, 66) and a.dtype == torch.float64 and torch.equal(a, b)
    # time-major: every block of 6 frames holds 3 replicas from each start; φ tells them apart
    from mlmol.geometry import dihedral_of

    phi = torch.rad2deg(dihedral_of(a[:36], PHI)).reshape(6, 6)
    assert bool((phi[:, :3] < 0).all()) and bool((phi[:, 3:] > 0).all())
    with pytest.raises(MlmolError, match="unknown MD engine"):
        molecular_dynamics(ala2, 4, engine="gromacs")
    # with a temperature ladder each replica is a parallel-tempering chain; the frames are its lowest state's
    laddered = {**options, "ladder": (600.0, 3), "replicas": 4}
    c = molecular_dynamics(ala2, 12, seed=3, **laddered)
    assert c.shape == (12, 66) and torch.equal(c, molecular_dynamics(ala2, 12, seed=3, **laddered))


def test_openmm_training_data_takes_the_same_repartitioned_masses():
    pytest.importorskip("openmm")
    from mlmol.samplers import MolecularDynamics
    from mlmol.systems.molecules import alanine_dipeptide

    ala2 = alanine_dipeptide(backend="torch")
    md = MolecularDynamics(ala2, timestep_fs=4.0, hydrogen_mass=3.024, equilibration=500, seed=0)
    masses = [md.context.getSystem().getParticleMass(i)._value for i in range(22)]
    np.testing.assert_allclose(masses, ala2.repartitioned_masses(3.024))
    assert ala2.system.getParticleMass(0)._value != masses[0]  # the molecule's own system is untouched
    assert np.isfinite(md.run(5, interval=25).numpy()).all()  # 4 fs is stable with them


def test_a_molecule_evaluated_in_another_precision_leaves_the_original_alone():
    pytest.importorskip("openmm")
    from mlmol.systems.molecules import alanine_dipeptide

    ala2 = alanine_dipeptide(backend="torch")
    single = ala2.evaluated_in(None, compile=False)
    x = torch.tensor(ala2.positions)[None]
    assert single.energy(x.float()).dtype == torch.float32 and ala2.energy(x.float()).dtype == torch.float32
    assert ala2.backend.precision == torch.float64 and single.backend is not ala2.backend
    torch.testing.assert_close(single.energy(x.float()).double(), ala2.energy(x), rtol=0, atol=1e-4)
    bridged = alanine_dipeptide(backend="openmm")
    with pytest.raises(MlmolError, match="needs the torch force field"):
        bridged.evaluated_in(None, compile=False)
    bridged.close()


def test_swapped_configurations_take_their_new_temperature_s_velocities():
    """Right after an exchange round, every slot's velocities have the variance s_k kT / m of its state."""
    from mlmol.samplers.exchange import ReplicaExchange, temperature_ladder

    rex = ReplicaExchange(Harmonic(dim=2, k=1.0), torch.zeros(4000, 2, 2, dtype=torch.float64),
                          temperature_ladder(1.0, 4.0, 2), timestep=0.01, friction=1.0,
                          masses=torch.tensor([2.0, 2.0], dtype=torch.float64), seed=0, exchange_every=50)
    rex.step(500)  # ends on an exchange round
    assert rex.rounds == 10 and float(rex.acceptance()[0]) > 0.1
    variance = rex._view(rex.md.v).var((0, 2))  # per slot
    torch.testing.assert_close(variance, torch.tensor([0.5, 2.0], dtype=torch.float64), rtol=0.04, atol=0)


def test_a_blow_up_inside_replica_exchange_names_the_replica_and_keeps_the_last_good_state():
    from mlmol.samplers.exchange import ReplicaExchange, temperature_ladder

    rex = ReplicaExchange(Slope(), torch.zeros(2, 3, 1, dtype=torch.float64), temperature_ladder(1, 4, 3),
                          timestep=0.05, seed=0, exchange_every=5)
    with pytest.raises(BlowUp, match=r"replica \d of 6 blew up at step \d+"):
        rex.step(1000)
    assert bool((rex.md.x <= 2.0).all()) and torch.isfinite(rex.md.u).all()


def test_hamiltonian_exchange_resumes_bit_for_bit():
    from mlmol.samplers.exchange import ReplicaExchange, torsion_umbrellas

    states = torsion_umbrellas([lambda x: x[..., 0]], np.array([[-40.0], [0.0], [40.0]]), k=20.0)
    _cut_run_equals_straight_run(lambda seed: ReplicaExchange(
        TiltedWell(), torch.zeros(3, 3, 1, dtype=torch.float64), states, timestep=0.005, friction=5.0, seed=seed,
        exchange_every=4), cut=17, total=40)


def test_masses_and_temperature_factors_give_each_slot_its_exact_harmonic_variances():
    """Slot k at temperature factor s_k samples Var(x) = s_k / k and Var(v) = s_k / m (kT = 1), whatever the
    masses: they change the dynamics, not the distribution."""
    from mlmol.samplers.exchange import ReplicaExchange, temperature_ladder

    masses = torch.tensor([0.5, 4.0], dtype=torch.float64)
    rex = ReplicaExchange(Harmonic(dim=2, k=4.0), torch.zeros(1000, 3, 2, dtype=torch.float64),
                          temperature_ladder(1.0, 4.0, 3), timestep=0.1, friction=2.0, masses=masses, seed=1,
                          exchange_every=7)
    rex.step(500)
    samples = rex.run(100, interval=10).observed  # [100, 1000 chains, 3 slots, 2]
    scales = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    variance = samples.reshape(-1, 3, 2).var(0)
    torch.testing.assert_close(variance, (scales / 4.0)[:, None].expand(3, 2), rtol=0.03, atol=0)
    velocity_variance = []
    for _ in range(30):
        rex.step(13)
        # BAOAB's velocities after the friction-and-noise update are exactly thermal: undo the last half kick
        velocity_variance.append(rex._view(rex.md.v - 0.5 * rex.md.dt * rex.md.force / rex.md.masses).var(0))
    # 30 snapshots of 1,000 chains (nearly independent at friction 2 over 13 steps): ±4.5% each, ±0.8% together
    torch.testing.assert_close(torch.stack(velocity_variance).mean(0), scales[:, None] / masses, rtol=0.04, atol=0)


def test_the_swap_draws_of_one_seed_are_not_the_dynamics_of_the_next():
    """Repeats seeded 0, 1, 2 ... are independent: no run's swap stream is seeded like any run's dynamics
    (seeding the swaps with seed + 1 would hand run s's swap draws to run s + 1's noise)."""
    from mlmol.samplers.exchange import ReplicaExchange, temperature_ladder

    runs = [ReplicaExchange(Harmonic(), torch.zeros(2, 2, 2), temperature_ladder(1, 2, 2), timestep=0.1, seed=seed)
            for seed in range(4)]
    seeds = [g.initial_seed() for rex in runs for g in (rex.md.generator, rex.generator)]
    assert len(set(seeds)) == len(seeds)
    again = ReplicaExchange(Harmonic(), torch.zeros(2, 2, 2), temperature_ladder(1, 2, 2), timestep=0.1, seed=2)
    assert (again.md.generator.initial_seed(), again.generator.initial_seed()) == tuple(seeds[4:6])  # still seeded
    with pytest.raises(MlmolError, match="seed"):
        ReplicaExchange(Harmonic(), torch.zeros(2, 2, 2), temperature_ladder(1, 2, 2), timestep=0.1, seed=-1)


def test_the_torch_restraint_equals_openmms_flat_bottom_restraint_for_trans_and_cis_centres():
    """The same energy on configurations with ω anywhere, zero within 90° of the centre."""
    openmm = pytest.importorskip("openmm")
    from mlmol.geometry import dihedral_of
    from mlmol.samplers.md import flat_bottom_restraint
    from mlmol.systems.molecules import alanine_dipeptide, peptide_bonds
    from mlmol.systems.restraints import FlatBottomRestrained, isomers

    ala2 = alanine_dipeptide(backend="torch")
    bonds = peptide_bonds(ala2.topology)

    class Nothing(Energy):
        def energy(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[:-1], dtype=x.dtype)

    x = torch.rand(64, ala2.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # ω anywhere
    for centre in (180.0, 0.0):
        restraint = FlatBottomRestrained(Nothing(ala2.dim, ala2.kT), bonds, centre).energy(x) * ala2.kT  # kJ/mol
        system = openmm.System()
        for _ in range(ala2.dim // 3):
            system.addParticle(1.0)
        system.addForce(flat_bottom_restraint(bonds, centre_deg=centre))
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        expected = []
        for xyz in x.reshape(len(x), -1, 3).numpy():
            context.setPositions(xyz)
            energy = context.getState(getEnergy=True).getPotentialEnergy()
            expected.append(energy.value_in_unit(openmm.unit.kilojoule_per_mole))
        expected = torch.tensor(expected, dtype=torch.float64)
        assert 10 < int((expected > 0).sum()) < 64  # some configurations beyond 90° of the centre, some within
        torch.testing.assert_close(restraint, expected, rtol=1e-6, atol=1e-6)
    start = torch.tensor(ala2.positions)
    assert isomers(start, bonds) == [180.0, 180.0]
    assert float(FlatBottomRestrained(ala2, bonds).energy(start) - ala2.energy(start)) == 0.0  # trans: no restraint
    omega = [float(np.degrees(dihedral_of(x[0], b))) for b in bonds]
    assert isomers(x[0], bonds) == [180.0 if abs(w) > 90 else 0.0 for w in omega]


def test_the_training_data_ladder_holds_each_peptide_bond_in_the_molecules_isomer(monkeypatch):
    pytest.importorskip("openmm")
    from mlmol.samplers import exchange
    from mlmol.samplers.md import molecular_dynamics
    from mlmol.systems import restraints
    from mlmol.systems.molecules import alanine_dipeptide, peptide_bonds

    class Seen(Exception):
        pass

    def capture(energy, *args, **kwargs):
        captured.append(energy)
        raise Seen

    captured = []
    monkeypatch.setattr(exchange, "ReplicaExchange", capture)
    ala2 = alanine_dipeptide(backend="torch")
    with pytest.raises(Seen):
        molecular_dynamics(ala2, 8, interval=5, engine="torch", replicas=2, compile=False, ladder=(600.0, 2))
    (energy,) = captured
    assert isinstance(energy, restraints.FlatBottomRestrained) and energy.torsions == peptide_bonds(ala2.topology)
    assert energy.centres == [np.pi, np.pi] and energy.half_width == np.pi / 2  # both bonds trans
    # a structure whose first bond were cis would be held cis
    monkeypatch.setattr(restraints, "isomers", lambda x, torsions: [0.0, 180.0])
    with pytest.raises(Seen):
        molecular_dynamics(ala2, 8, interval=5, engine="torch", replicas=2, compile=False, ladder=(600.0, 2))
    assert captured[1].centres == [0.0, np.pi]


def test_training_data_from_the_ladders_lowest_rungs_adds_the_hotter_frames_to_the_same_trajectory():
    pytest.importorskip("openmm")
    from mlmol.config import make_config
    from mlmol.samplers.md import molecular_dynamics
    from mlmol.systems.molecules import alanine_dipeptide

    ala2 = alanine_dipeptide(backend="torch")
    options = {"interval": 2, "engine": "torch", "replicas": 2, "compile": False, "ladder": (600.0, 3),
               "equilibration": 2, "seed": 3}
    alone = molecular_dynamics(ala2, 6, **options)  # 3 times × 2 replicas of the molecule's temperature
    both = molecular_dynamics(ala2, 12, rungs=2, **options).reshape(3, 2, 2, -1)  # [time, replica, rung, 3N]
    assert torch.equal(both[:, :, 0].reshape(6, -1), alone)  # rung 0 is the same dynamics' frames
    assert not torch.equal(both[:, :, 1], both[:, :, 0])
    with pytest.raises(MlmolError, match="between 1 and the ladder's 3 temperatures"):
        molecular_dynamics(ala2, 6, rungs=4, **options)
    with pytest.raises(MlmolError, match="data.rungs"):
        make_config("alanine-dipeptide", base={"data": {"rungs": 10}})


def test_a_blow_up_in_simulated_replicas_keeps_the_frames_and_checkpoint_already_written(tmp_path, monkeypatch):
    pytest.importorskip("openmm")
    from mlmol.data import load_torch, load_trajectory
    from mlmol.simulation import simulate_replicas
    from mlmol.systems.molecules import alanine_dipeptide

    ala2 = alanine_dipeptide(backend="torch")

    class FailsLater(Energy):
        """The molecule's energy for its first 8 evaluations (the start and 7 steps), then NaN."""

        def __init__(self):
            super().__init__(ala2.dim, ala2.kT)
            self.calls = 0

        def energy(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            u = ala2.energy(x)
            return u if self.calls <= 8 else u * float("nan")

    monkeypatch.setattr(ala2, "evaluated_in", lambda precision, compile: FailsLater())
    out = tmp_path / "md.dcd"
    with pytest.raises(BlowUp, match=r"replica 0 of 4 blew up at step 8.*md.dcd keeps its 1 frames"):
        simulate_replicas(ala2, out, 100, interval=5, replicas=4, equilibration=0, chunk=1, seed=0)
    assert load_trajectory(out, ala2.topology).shape == (4, 66)  # the first frame of every replica
    assert load_torch(tmp_path / "md.dcd.chk", "MD checkpoint")["frames"] == 1
