"""The OpenMM bridge: parity with a direct OpenMM call, gradients, worker failure, no leaks."""

import gc
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import torch

openmm = pytest.importorskip("openmm")

from mlmol import MlmolError  # noqa: E402
from mlmol.systems.molecules import alanine_dipeptide, dihedral, from_pdb  # noqa: E402
from mlmol.systems.openmm_bridge import OpenMMBridge, OpenMMWorkerError  # noqa: E402

pytestmark = pytest.mark.openmm


@pytest.fixture(scope="module", params=[False, True], ids=["vacuum", "implicit"])
def ala2(request):
    energy = alanine_dipeptide(implicit_solvent=request.param, workers=2, backend="openmm")
    yield energy
    energy.close()


def _configurations(energy, n, scale=0.02, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.as_tensor(energy.positions)
    return x0 + scale * torch.randn(n, energy.dim, generator=g, dtype=torch.float64)


def test_energies_and_forces_match_a_direct_openmm_call(ala2):
    x = _configurations(ala2, 16)
    u = ala2.energy(x)
    energies, forces = ala2.backend.bridge.compute(x.numpy())
    context = openmm.Context(ala2.system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    for i in range(len(x)):
        context.setPositions(x[i].reshape(-1, 3).numpy())
        state = context.getState(getEnergy=True, getForces=True)
        e_ref = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
        f_ref = state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
        assert energies[i] == pytest.approx(e_ref, rel=1e-6)
        assert u[i].item() == pytest.approx(e_ref / ala2.kT, rel=1e-6)
        assert np.max(np.abs(forces[i] - f_ref)) <= 1e-6 * np.max(np.abs(f_ref))
    assert ala2.kT == pytest.approx(0.008314462618 * 300.0)


def test_gradient_matches_finite_differences(ala2):
    x = _configurations(ala2, 3, seed=1).requires_grad_(True)
    ala2.energy(x).sum().backward()
    g = torch.Generator().manual_seed(2)
    for i in range(3):
        v = torch.randn(ala2.dim, generator=g, dtype=torch.float64)
        v /= v.norm()
        h = 1e-5
        with torch.no_grad():
            fd = (ala2.energy(x[i] + h * v) - ala2.energy(x[i] - h * v)) / (2 * h)
        assert (x.grad[i] @ v).item() == pytest.approx(fd.item(), rel=1e-4, abs=1e-3)


def test_shapes_and_phi_of_the_shipped_structure(ala2):
    x = torch.as_tensor(ala2.positions)
    assert ala2.energy(x).shape == ()
    assert ala2.energy(x.reshape(1, 1, -1)).shape == (1, 1)
    phi = np.degrees(dihedral(x, 4, 6, 8, 10).item())
    assert -100 < phi < -60  # built in the C7eq basin
    with pytest.raises(MlmolError, match="dim 66"):
        ala2.energy(torch.zeros(2, 60, dtype=torch.float64))


def _children():
    out = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(os.getpid())], capture_output=True, text=True).stdout
    return {int(line.split()[0]) for line in out.splitlines() if line.split()[1:] != ["ps"]}


def _rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def test_killed_or_hung_worker_is_replaced_and_the_call_errors_cleanly():
    energy = alanine_dipeptide(workers=2, backend="openmm")
    bridge = OpenMMBridge(energy.system, workers=2, timeout=2.0)
    energy.close()
    x = np.tile(energy.positions, (8, 1))
    reference, _ = bridge.compute(x)
    victim = bridge.workers[0].process.pid
    os.kill(victim, signal.SIGKILL)
    bridge.workers[0].process.wait(5)  # fully dead: sending to it now fails with a broken pipe
    with pytest.raises(OpenMMWorkerError, match="worker 0 died"):
        bridge.compute(x)
    assert bridge.workers[0].process.pid != victim
    np.testing.assert_array_equal(bridge.compute(x)[0], reference)  # the pool works again
    stuck = bridge.workers[1].process.pid
    os.kill(stuck, signal.SIGSTOP)  # a hung worker
    start = time.monotonic()
    with pytest.raises(OpenMMWorkerError, match="did not answer within 2 s"):
        bridge.compute(x)
    assert time.monotonic() - start < 10
    np.testing.assert_array_equal(bridge.compute(x)[0], reference)
    bridge.close()


def test_a_thousand_calls_leak_no_processes_or_memory():
    before = _children()
    energy = alanine_dipeptide(workers=2, backend="openmm")
    x = _configurations(energy, 20)
    for _ in range(50):  # warm-up: allocator pools settle
        energy.energy(x)
    rss = _rss_mb()
    for _ in range(1000):
        energy.energy(x)
    assert _rss_mb() - rss < 20
    assert len(_children() - before) == 2
    pids = [w.process.pid for w in energy.backend.bridge.workers]
    del energy
    gc.collect()
    time.sleep(0.2)
    assert not (_children() - before), "workers outlived their bridge"
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_pdb_errors(tmp_path):
    with pytest.raises(MlmolError, match="does not exist"):
        from_pdb(tmp_path / "missing.pdb")
    bad = tmp_path / "bad.pdb"
    bad.write_text("ATOM      1  N   ALA A   1       nan   0.000   0.000  1.00  0.00           N\nEND\n")
    with pytest.raises(MlmolError, match="bad.pdb"):
        from_pdb(bad)
    weird = tmp_path / "weird.pdb"
    weird.write_text("HETATM    1  C1  XYZ A   1       0.000   0.000   0.000  1.00  0.00           C\n"
                     "HETATM    2  C2  XYZ A   1       1.500   0.000   0.000  1.00  0.00           C\nEND\n")
    with pytest.raises(MlmolError, match="XYZ"):
        from_pdb(weird)


@pytest.mark.parametrize("ending", ["exit", "sigkill", "sigint"])
def test_workers_end_with_their_parent(ending):
    """Workers stop when the parent exits normally, is killed, or gets Ctrl-C."""
    import sys

    script = ("import signal, sys, time\n"
              "signal.signal(signal.SIGINT, signal.default_int_handler)\n"  # a shell's background job ignores it
              "from mlmol.systems.molecules import alanine_dipeptide\n"
              "e = alanine_dipeptide(workers=2, backend='openmm')\n"
              "print(' '.join(str(w.process.pid) for w in e.backend.bridge.workers), flush=True)\n"
              + ("" if ending == "exit" else "time.sleep(60)\n"))
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert len(pids) == 2
    if ending == "sigkill":
        parent.kill()
    elif ending == "sigint":
        parent.send_signal(signal.SIGINT)
    parent.wait(30)
    deadline = time.monotonic() + 10
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        for pid in list(alive):
            try:
                os.kill(pid, 0)
                # a finished child of the dead parent may linger as a zombie until reaped by init
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().split()[2] == "Z":
                        alive.discard(pid)
            except (ProcessLookupError, FileNotFoundError):
                alive.discard(pid)
        time.sleep(0.1)
    assert not alive, f"workers {alive} outlived their parent ({ending})"


def test_molecular_dynamics_is_seeded_and_stays_in_the_basin():
    from mlmol.samplers import molecular_dynamics

    energy = alanine_dipeptide()
    a = molecular_dynamics(energy, 50, interval=100, equilibration=500, seed=3)
    b = molecular_dynamics(energy, 50, interval=100, equilibration=500, seed=3)
    c = molecular_dynamics(energy, 50, interval=100, equilibration=500, seed=4)
    assert a.shape == (50, 66) and a.dtype == torch.float64
    assert torch.equal(a, b) and not torch.equal(a, c)
    u = energy.energy(a)
    assert torch.all(torch.isfinite(u))
    # thermal fluctuations at 300 K: 60 unconstrained degrees of freedom give std(U)/kT ≈ sqrt(60/2) ≈ 5.5
    assert 3.0 < u.std().item() < 9.0
    phi = dihedral(a, 4, 6, 8, 10)
    assert torch.all(phi < 0)  # 5 ps never cross to the rare φ > 0 basin
    with pytest.raises(MlmolError, match="positive"):
        molecular_dynamics(energy, 0)
    energy.close()


def test_md_from_several_starts_reaches_the_rare_basin():
    from mlmol.samplers import molecular_dynamics
    from mlmol.systems.molecules import PHI, PSI, backbone_torsions

    energy = alanine_dipeptide()
    assert backbone_torsions(energy.topology) == {"phi": PHI, "psi": PSI} == energy.torsions
    x = molecular_dynamics(energy, 40, interval=50, equilibration=500, starts=[{"phi": -80, "psi": 150},
                                                                               {"phi": 60, "psi": 40}])
    phi = energy.variables["phi"](x)
    assert x.shape == (40, 66) and torch.all(phi[:20] < 0) and torch.all(phi[20:] > 0)
    assert torch.all(torch.isfinite(energy.energy(x)))
    with pytest.raises(MlmolError, match="no torsions named \\['omega'\\]; known: phi, psi"):
        molecular_dynamics(energy, 4, starts=[{"omega": 180}])
    energy.close()


@pytest.mark.parametrize("suffix", [".dcd", ".pdb"])
def test_trajectory_round_trip_and_atom_count_mismatch(tmp_path, suffix):
    from mlmol.data import load_trajectory, save_trajectory

    energy = alanine_dipeptide()
    x = _configurations(energy, 5)
    path = save_trajectory(tmp_path / f"t{suffix}", x, energy.topology)
    back = load_trajectory(path, energy.topology)
    assert back.shape == (5, 66)
    assert torch.allclose(back, x, atol=1e-3)  # single precision / PDB's 3 decimals in Å
    before = path.read_bytes()
    with pytest.raises(MlmolError, match="21 atoms per frame"):
        save_trajectory(path, x[:, :63], energy.topology)
    assert path.read_bytes() == before  # a failed write leaves the old file intact
    import mdtraj

    other = mdtraj.Topology.from_openmm(energy.topology).subset(range(20))
    with pytest.raises(MlmolError, match=f"t{suffix}"):
        load_trajectory(path, other)
    energy.close()


def test_md_checkpoint_continues_the_same_trajectory():
    from mlmol.samplers import MolecularDynamics

    energy = alanine_dipeptide()
    straight = MolecularDynamics(energy, seed=5, equilibration=100).run(20, interval=50)
    first = MolecularDynamics(energy, seed=5, equilibration=100)
    head = first.run(10, interval=50)
    state = first.checkpoint()
    second = MolecularDynamics(energy, seed=99, equilibration=0, minimize=False)
    second.restore(state)
    tail = second.run(10, interval=50)
    assert torch.equal(torch.cat([head, tail]), straight)
    with pytest.raises(MlmolError, match="checkpoint"):
        second.restore(b"garbage")
    energy.close()


def test_simulate_writes_atomically_and_resumes(tmp_path):
    from mlmol.data import load_trajectory
    from mlmol.simulation import simulate

    energy = alanine_dipeptide()
    straight = simulate(energy, tmp_path / "a.dcd", 30, interval=20, seed=1, chunk=10, equilibration=100)
    out = tmp_path / "b.dcd"
    simulate(energy, out, 20, interval=20, seed=1, chunk=10, equilibration=100)
    with pytest.raises(MlmolError, match="already exists"):
        simulate(energy, out, 30, interval=20, seed=1, equilibration=100)
    assert len(load_trajectory(out, energy.topology)) == 20  # nothing lost
    with pytest.raises(MlmolError, match="same options"):
        simulate(energy, out, 30, interval=10, seed=1, resume=True, equilibration=100)
    resumed = simulate(energy, out, 30, interval=20, seed=1, chunk=10, resume=True, equilibration=100)
    assert torch.allclose(resumed, straight, atol=1e-4)  # DCD stores single precision
    assert len(load_trajectory(out, energy.topology)) == 30
    energy.close()


def test_missing_hydrogens_are_added_or_refused(tmp_path):
    from mlmol.systems.molecules import ALANINE_DIPEPTIDE_PDB

    heavy = [line for line in ALANINE_DIPEPTIDE_PDB.read_text().splitlines()
             if line.startswith(("ATOM", "HETATM")) and line[76:78].strip() != "H"]
    path = tmp_path / "heavy.pdb"
    path.write_text("\n".join(heavy) + "\nEND\n")
    energy = from_pdb(path, forcefield=("amber99sbildn.xml",))
    assert energy.dim == 66 and energy.topology.getNumAtoms() == 22
    assert torch.isfinite(energy.energy(torch.as_tensor(energy.positions))).all()
    energy.close()
    with pytest.raises(MlmolError, match="heavy.pdb lacks hydrogens"):
        from_pdb(path, forcefield=("amber99sbildn.xml",), add_hydrogens=False)


def test_chirality_of_samples():
    from mlmol.systems.molecules import chiral_centres, handedness, wrong_handed_fraction

    energy = alanine_dipeptide()
    centres = chiral_centres(energy.topology)
    assert centres == [(6, 8, 10, 12)]  # N, CA, C, CB of the alanine
    x = _configurations(energy, 10, scale=0.005)
    reference = torch.as_tensor(energy.positions)
    assert torch.all(handedness(reference, centres) == 1)  # L-alanine
    assert wrong_handed_fraction(x, reference, centres) == 0.0
    mirrored = -x  # a reflection turns L into D
    assert wrong_handed_fraction(torch.cat([x, mirrored[:5]]), reference, centres) == pytest.approx(5 / 15)
    energy.close()
