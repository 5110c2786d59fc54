"""The native torch force field against OpenMM, term by term (the torchmd style of parity test)."""

import numpy as np
import pytest
import torch

openmm = pytest.importorskip("openmm")

from openmm import app, unit  # noqa: E402

from mlmol import MlmolError  # noqa: E402
from mlmol.systems.forcefield import ForceField, Pairs, TorchEnergy, UnsupportedForce  # noqa: E402
from mlmol.systems.molecules import ALANINE_DIPEPTIDE_PDB, from_pdb  # noqa: E402
from mlmol.systems.openmm_bridge import OpenMMEnergy  # noqa: E402

pytestmark = pytest.mark.openmm
OPENMM_DATA = app.__path__[0] + "/data"
GLYCINE = "tests/data/glycine-dipeptide.pdb"

# molecule, force-field files: three molecules, five force fields, vacuum and every implicit solvent of
# OpenMM's (GBSAOBCForce from *_obc.xml; a CustomGBForce from implicit/*.xml)
CASES = {
    "alanine-dipeptide/amber99sbildn": (str(ALANINE_DIPEPTIDE_PDB), ["amber99sbildn.xml"]),
    "alanine-dipeptide/amber99sbildn+obc": (str(ALANINE_DIPEPTIDE_PDB), ["amber99sbildn.xml", "amber99_obc.xml"]),
    "glycine-dipeptide/amber14": (GLYCINE, ["amber14-all.xml"]),
    "glycine-dipeptide/amber10+obc": (GLYCINE, ["amber10.xml", "amber10_obc.xml"]),
    "villin/amber03": ("villin", ["amber03.xml"]),  # 584 atoms; OpenMM's *_obc.xml lack its residues' types
    "alanine-dipeptide/amber14+obc1": (str(ALANINE_DIPEPTIDE_PDB), ["amber14-all.xml", "implicit/obc1.xml"]),
    "glycine-dipeptide/amber14+obc2": (GLYCINE, ["amber14-all.xml", "implicit/obc2.xml"]),
    "alanine-dipeptide/amber14+hct": (str(ALANINE_DIPEPTIDE_PDB), ["amber14-all.xml", "implicit/hct.xml"]),
    "glycine-dipeptide/amber14+gbn": (GLYCINE, ["amber14-all.xml", "implicit/gbn.xml"]),
    "alanine-dipeptide/amber14+gbn2": (str(ALANINE_DIPEPTIDE_PDB), ["amber14-all.xml", "implicit/gbn2.xml"]),
    "villin/amber03+obc1": ("villin", ["amber03.xml", "implicit/obc1.xml"]),
    "villin/amber03+gbn2": ("villin", ["amber03.xml", "implicit/gbn2.xml"]),
}
SLOW_CASES = ("villin/amber03+obc1", "villin/amber03+gbn2")  # 40 s each for the Reference platform's MD frames


def build(pdb: str, files: list[str]):
    """(system with one force group per force, positions [N, 3] nm); villin is OpenMM's test.pdb without water."""
    forcefield = app.ForceField(*files)
    if pdb == "villin":
        source = app.PDBFile(f"{OPENMM_DATA}/test.pdb")
        modeller = app.Modeller(source.topology, source.positions)
        modeller.deleteWater()
    else:
        source = app.PDBFile(pdb)
        modeller = app.Modeller(source.topology, source.positions)
        modeller.addHydrogens(forcefield)
    system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.NoCutoff, constraints=None,
                                     rigidWater=False)
    for group, force in enumerate(system.getForces()):
        force.setForceGroup(group)
    return system, np.array(modeller.positions.value_in_unit(unit.nanometer))


def configurations(system, x0: np.ndarray) -> np.ndarray:
    """Frames of a short Langevin MD at 300 K, the structure perturbed by 0.01 and 0.03 nm, and a
    far-from-equilibrium one (0.1 nm noise)."""
    integrator = openmm.LangevinMiddleIntegrator(300, 1.0, 0.0005)
    integrator.setRandomNumberSeed(1)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(x0)
    openmm.LocalEnergyMinimizer.minimize(context, maxIterations=50)
    frames = []
    for _ in range(2):
        integrator.step(100)
        frames.append(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    rng = np.random.default_rng(0)
    frames += [x0 + rng.normal(0, s, x0.shape) for s in (0.01, 0.03, 0.1)]
    return np.stack(frames)


def openmm_reference(system, frames: np.ndarray):
    """Energies per force group ``{group: [F]}`` and forces ``[F, N, 3]`` from the Reference platform."""
    context = openmm.Context(system, openmm.VerletIntegrator(1e-3), openmm.Platform.getPlatformByName("Reference"))
    groups = {g for g, f in enumerate(system.getForces()) if type(f).__name__ != "CMMotionRemover"}
    energies, forces = {g: [] for g in groups}, []
    for x in frames:
        context.setPositions(x)
        for g in groups:
            state = context.getState(getEnergy=True, groups={g})
            energies[g].append(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
        state = context.getState(getForces=True)
        forces.append(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))
    return {g: np.array(e) for g, e in energies.items()}, np.stack(forces)


@pytest.fixture(scope="module", params=[pytest.param(c, marks=pytest.mark.slow) if c in SLOW_CASES else c for c in CASES],
                ids=list(CASES))
def case(request):
    system, x0 = build(*CASES[request.param])
    frames = configurations(system, x0)
    return system, frames, *openmm_reference(system, frames)


def test_energy_of_every_force_group_and_forces_match_openmm_in_float64(case):
    system, frames, reference_energies, reference_forces = case
    model = ForceField(system).double()
    x = torch.tensor(frames.reshape(len(frames), -1), requires_grad=True)
    groups = model.groups(x)
    assert set(groups) == set(reference_energies)
    for group, energy in groups.items():
        reference = reference_energies[group]
        error = np.abs(energy.detach().numpy() - reference) / np.maximum(np.abs(reference), 1.0)
        assert error.max() < 1e-9, (type(system.getForce(group)).__name__, error.max())  # float64: ~1e-14 seen
    total = model(x)
    assert np.allclose(total.detach().numpy(), sum(reference_energies.values()), rtol=1e-9)
    (gradient,) = torch.autograd.grad(total.sum(), x)
    forces = -gradient.numpy().reshape(reference_forces.shape)
    for f, ref in zip(forces, reference_forces, strict=True):  # each atom, relative to its own force (≥ 1 kJ/mol/nm)
        scale = np.maximum(np.linalg.norm(ref, axis=-1, keepdims=True), 1.0)
        assert (np.abs(f - ref) / scale).max() < 1e-7


def test_float32_energies_agree_with_float64_to_single_precision(case):
    system, frames, reference_energies, _ = case
    x = torch.tensor(frames.reshape(len(frames), -1))
    single = ForceField(system).float()(x.float()).double()
    double = ForceField(system).double()(x)
    scale = sum(np.abs(e) for e in reference_energies.values())  # the size of the terms that cancel
    assert (np.abs((single - double).numpy()) / scale).max() < 1e-4  # ~1e-5 at 2.7e11 kJ/mol (villin, 0.1 nm noise)


def test_overlapping_atoms_give_large_finite_energies_in_float64_and_never_nan():
    energy = from_pdb(ALANINE_DIPEPTIDE_PDB, forcefield=["amber99sbildn.xml", "amber99_obc.xml"], backend="torch",
                      add_hydrogens=False)
    x = torch.tensor(energy.positions).reshape(1, -1, 3).repeat(3, 1, 1)
    x[1, 21] = x[1, 0]  # two non-bonded atoms on top of each other
    x[2] = x[2, 0]  # every atom at one point
    x = x.reshape(3, -1)
    u64 = energy.backend.forcefield(x)
    assert torch.isfinite(u64).all() and u64[1] > 1e20 and u64[2] > 1e20
    x64 = x.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(energy.backend.forcefield(x64).sum(), x64)
    assert not gradient.isnan().any()
    u32 = energy.backend.forcefield_for("cpu", torch.float32)(x.float())
    assert torch.isfinite(u32[0]) and not u32.isnan().any()  # float32: overlaps overflow to +inf, never NaN
    assert (u32[1:] == float("inf")).all()


def test_torch_energy_is_the_reduced_energy_and_keeps_float64_whatever_the_input_dtype():
    torch_energy = from_pdb(ALANINE_DIPEPTIDE_PDB, forcefield=["amber99sbildn.xml"], backend="torch",
                            add_hydrogens=False)
    bridge = from_pdb(ALANINE_DIPEPTIDE_PDB, forcefield=["amber99sbildn.xml"], backend="openmm", add_hydrogens=False)
    try:
        assert isinstance(torch_energy.backend, TorchEnergy) and isinstance(bridge.backend, OpenMMEnergy)
        x = torch.tensor(torch_energy.positions)[None] + 0.01 * torch.randn(4, torch_energy.dim,
                                                                           generator=torch.Generator().manual_seed(0))
        assert torch.allclose(torch_energy.energy(x), bridge.energy(x), rtol=1e-10)
        assert torch.allclose(torch_energy.force(x), bridge.force(x), rtol=1e-8, atol=1e-6)
        assert torch_energy.energy(x.float()).dtype == torch.float32
        assert torch.allclose(torch_energy.energy(x.float()).double(), torch_energy.energy(x), rtol=1e-6)
        assert torch_energy.torsions == bridge.torsions and torch_energy.states == bridge.states
    finally:
        bridge.close()


def test_unsupported_forces_and_constraints_are_named_with_the_way_out():
    system, _ = build(GLYCINE, ["amber19-all.xml"])  # ff19SB has CMAP
    with pytest.raises(UnsupportedForce, match="CMAPTorsionForce.*backend='openmm'"):
        ForceField(system)
    with pytest.raises(UnsupportedForce, match="CMAPTorsionForce"):
        from_pdb(GLYCINE, forcefield=["amber19-all.xml"], backend="torch")
    auto = from_pdb(GLYCINE, forcefield=["amber19-all.xml"])  # auto: falls back, and says so
    try:
        assert isinstance(auto.backend, OpenMMEnergy)
        assert any("OpenMM bridge" in n and "CMAPTorsionForce" in n for n in auto.notices())
    finally:
        auto.close()
    salty = app.ForceField("amber14-all.xml", "implicit/obc2.xml").createSystem(  # Debye screening: not covered
        app.PDBFile(str(ALANINE_DIPEPTIDE_PDB)).topology, nonbondedMethod=app.NoCutoff, constraints=None,
        implicitSolventKappa=1.0 / unit.nanometer)
    with pytest.raises(UnsupportedForce, match="CustomGBForce only as OpenMM's implicit-solvent files build it"):
        ForceField(salty)
    custom = openmm.CustomGBForce()  # any other generalised Born model: named, with the way out
    custom.addPerParticleParameter("q")
    with pytest.raises(UnsupportedForce, match="backend='openmm'"):
        ForceField(_with_force(custom))
    constrained = app.ForceField("amber14-all.xml").createSystem(
        app.PDBFile(str(ALANINE_DIPEPTIDE_PDB)).topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
    with pytest.raises(MlmolError, match="constraints"):
        ForceField(constrained)
    with pytest.raises(MlmolError, match="unknown energy backend"):
        from_pdb(ALANINE_DIPEPTIDE_PDB, backend="jax")
    with pytest.raises(MlmolError, match=r"expected coordinates \[batch, 66\]"):
        ForceField(build(str(ALANINE_DIPEPTIDE_PDB), ["amber99sbildn.xml"])[0])(torch.zeros(2, 60))


def _with_force(force, add_particles: bool = True, particles: int = 2) -> openmm.System:
    """A system of ``particles`` atoms holding ``force`` alone (its particles added with zero parameters
    unless ``add_particles`` is False)."""
    system = openmm.System()
    for _ in range(particles):
        system.addParticle(1.0)
        if add_particles:
            force.addParticle([0.0] * force.getNumPerParticleParameters())
    system.addForce(force)
    return system


def test_the_generalised_born_models_are_recognised_by_name():
    """Each implicit-solvent file maps to its model, so a parity case tests what it says it does."""
    from mlmol.systems.forcefield import GeneralizedBorn

    pdb = app.PDBFile(str(ALANINE_DIPEPTIDE_PDB))
    for files, name in ((["amber99sbildn.xml", "amber99_obc.xml"], "OBC2"), (["implicit/obc1.xml"], "OBC1"),
                        (["implicit/obc2.xml"], "OBC2"), (["implicit/hct.xml"], "HCT"),
                        (["implicit/gbn.xml"], "GBn"), (["implicit/gbn2.xml"], "GBn2")):
        forcefield = app.ForceField(*(files if len(files) == 2 else ["amber14-all.xml", *files]))
        system = forcefield.createSystem(pdb.topology, nonbondedMethod=app.NoCutoff, constraints=None)
        (term,) = [t for t in ForceField(system).terms_ if isinstance(t, GeneralizedBorn)]
        assert term.model == name


def _energies_and_forces(model, x: torch.Tensor):
    x = x.detach().requires_grad_(True)
    energy = model(x)
    (gradient,) = torch.autograd.grad(energy.sum(), x)
    return energy.detach(), -gradient


@pytest.fixture(scope="module")
def implicit_alanine():
    """(system with OBC2, 7 configurations [7, 66] float64 nm)."""
    system, x0 = build(str(ALANINE_DIPEPTIDE_PDB), ["amber99sbildn.xml", "amber99_obc.xml"])
    noise = 0.02 * torch.randn(7, x0.size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return system, torch.tensor(x0.reshape(1, -1)) + noise


def test_a_batch_in_pieces_gives_the_energies_and_forces_of_one_piece(implicit_alanine):
    system, x = implicit_alanine
    whole, pieces = ForceField(system, chunk=100).double(), ForceField(system, chunk=3).double()
    (e1, f1), (e2, f2) = _energies_and_forces(whole, x), _energies_and_forces(pieces, x)
    assert torch.allclose(e1, e2, rtol=1e-13) and torch.allclose(f1, f2, rtol=1e-12, atol=1e-10)
    assert pieces(x[:0]).shape == (0,) and pieces(x[None]).shape == (1, 7)


def test_second_derivatives_match_finite_differences_of_the_closed_form_gradient(implicit_alanine):
    """create_graph=True (Hessians, force matching) differentiates the pair terms again by autograd;
    the Hessian-vector product agrees with central differences of the closed-form forces."""
    system, x = implicit_alanine
    model = ForceField(system).double()
    x, v = x[:2].clone().requires_grad_(True), torch.randn(2, x.shape[1], generator=torch.Generator().manual_seed(1),
                                                          dtype=torch.float64)
    (gradient,) = torch.autograd.grad(model(x).sum(), x, create_graph=True)
    (hessian_v,) = torch.autograd.grad((gradient * v).sum(), x)
    step = 1e-6
    (f_plus,), (f_minus,) = (_energies_and_forces(model, x.detach() + s * step * v)[1:] for s in (1, -1))
    finite = (f_minus - f_plus) / (2 * step)  # forces are −∇E
    assert torch.allclose(hessian_v, finite, rtol=1e-6, atol=1e-6 * finite.abs().max())  # measured: 4e-9


@pytest.mark.slow
@pytest.mark.smoke
def test_the_compiled_force_field_matches_eager_for_any_batch_size(implicit_alanine):
    system, x = implicit_alanine
    eager, compiled = ForceField(system).double(), ForceField(system, compile=True).double()
    for batch in (7, 3):  # a second size reuses the dynamic-shape compilation
        (e1, f1), (e2, f2) = _energies_and_forces(eager, x[:batch]), _energies_and_forces(compiled, x[:batch])
        assert compiled._compiled is not None, "torch.compile fell back to eager"
        assert torch.allclose(e1, e2, rtol=1e-10) and torch.allclose(f1, f2, rtol=1e-9, atol=1e-8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_same_code_runs_on_cuda():
    system, x0 = build(str(ALANINE_DIPEPTIDE_PDB), ["amber99sbildn.xml", "amber99_obc.xml"])
    x = torch.tensor(x0.reshape(1, -1))
    cpu = ForceField(system).double()(x)
    gpu = ForceField(system).double().cuda()(x.cuda())
    assert torch.allclose(cpu, gpu.cpu(), rtol=1e-10)


def test_energy_backend_is_a_molecule_option_of_the_config_and_cli(tmp_path, capsys):
    from mlmol.cli import main
    from mlmol.config import make_config

    assert make_config(system="alanine-dipeptide", backend="openmm")["system"]["backend"] == "openmm"
    assert make_config(system="alanine-dipeptide")["system"]["backend"] == "auto"
    assert main(["train", "double-well", "--out", str(tmp_path / "r"), "--energy-backend", "torch"]) == 2
    assert "--energy-backend applies to molecules" in capsys.readouterr().err


@pytest.mark.parametrize("n_atoms", range(1, 8))
def test_the_circulant_pair_layout_lists_every_pair_once_and_sums_back_to_atoms(n_atoms):
    pairs = Pairs(n_atoms)
    atoms = torch.arange(n_atoms, dtype=torch.float64)[:, None]  # [N, 1]: an atom's own index
    partner = pairs.of_partner(atoms)[..., 0]  # [N, K]
    listed = sorted(tuple(sorted((i, int(j)))) for i in range(n_atoms) for j, keep
                    in zip(partner[i], pairs.unique[i], strict=True) if keep)
    assert listed == [(i, j) for i in range(n_atoms) for j in range(i + 1, n_atoms)]
    values = torch.randn(n_atoms, pairs.width, 2, dtype=torch.float64)  # a pair array, per row i and column k
    expected = torch.zeros(n_atoms, 2, dtype=torch.float64)
    for i in range(n_atoms):
        for k in range(pairs.width):
            expected[int(partner[i, k])] += values[i, k]
    assert torch.allclose(pairs.partner_sum(values), expected)
    symmetric = torch.randn(n_atoms, n_atoms, dtype=torch.float64)
    symmetric = symmetric + symmetric.T
    matrix = pairs.matrix(symmetric)[..., 0]
    assert all(matrix[i, k] == (symmetric[i, int(partner[i, k])] if pairs.unique[i, k] else 0)
               for i in range(n_atoms) for k in range(pairs.width))


@pytest.mark.parametrize("model", ["GBSAOBCForce", "GBSAOBC1Force", "GBSAOBC2Force", "GBSAHCTForce"])
def test_an_atom_buried_in_another_s_sphere_matches_openmm(model):
    """Two charged atoms at distances across the buried boundary ρ_i < s_j − r (r = 0.04–0.08 nm here):
    GBSAOBCForce's Tinker term and the custom models' +2/L² derivative, energies and forces, against
    OpenMM's Reference platform."""
    from openmm.app.internal import customgbforces

    if model == "GBSAOBCForce":
        force = openmm.GBSAOBCForce()
        for charge, radius, scale in ((0.5, 0.1, 0.8), (-0.4, 0.2, 1.0)):
            force.addParticle(charge, radius, scale)
    else:
        force = getattr(customgbforces, model)(solventDielectric=78.5, soluteDielectric=1.0, SA="ACE")
        for parameters in ((0.5, 0.1, 0.8), (-0.4, 0.2, 1.0)):
            force.addParticle(list(parameters))
        force.finalize()
    system = _with_force(force, add_particles=False)
    frames = np.array([[[0, 0, 0], [r, 0.3 * r, 0]] for r in (0.04, 0.06, 0.08, 0.12, 0.3)], dtype=float)
    energies, forces = openmm_reference(system, frames)
    x = torch.tensor(frames.reshape(len(frames), -1), requires_grad=True)
    energy = ForceField(system).double()(x)
    (gradient,) = torch.autograd.grad(energy.sum(), x)
    np.testing.assert_allclose(energy.detach().numpy(), energies[0], rtol=1e-10)
    np.testing.assert_allclose(-gradient.numpy().reshape(forces.shape), forces, rtol=1e-8, atol=1e-8)


def test_near_misses_of_openmm_s_implicit_solvent_are_refused():
    """One number changed in a generator's expression, a cutoff: not the model the torch term computes."""
    system, _ = build(str(ALANINE_DIPEPTIDE_PDB), ["amber14-all.xml", "implicit/obc1.xml"])
    (custom,) = [f for f in system.getForces() if isinstance(f, openmm.CustomGBForce)]
    name, expression, kind = custom.getComputedValueParameters(1)
    custom.setComputedValueParameters(1, name, expression.replace("2.909125", "2.9"), kind)
    with pytest.raises(UnsupportedForce, match="implicit-solvent files"):
        ForceField(system)
    cut = openmm.GBSAOBCForce()
    cut.setNonbondedMethod(openmm.GBSAOBCForce.CutoffNonPeriodic)
    cut.addParticle(0.1, 0.15, 0.8)
    with pytest.raises(UnsupportedForce, match="without cutoff"):
        ForceField(_with_force(cut, add_particles=False, particles=1))
