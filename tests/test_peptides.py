"""Peptides from their sequence: geometry, chirality, termini and charge, and the errors that name the fix."""

import pathlib

import numpy as np
import pytest
import torch

openmm = pytest.importorskip("openmm")
pytest.importorskip("PeptideBuilder")

from openmm import app

from mlmol import MlmolError
from mlmol.cli import main
from mlmol.geometry import dihedral_from_points
from mlmol.systems.molecules import chiral_centres, from_pdb, handedness
from mlmol.systems.peptides import _check_structure, build_peptide, check_sequence

pytestmark = pytest.mark.openmm


def _total_charge(topology) -> float:
    system = app.ForceField("amber14-all.xml").createSystem(topology, nonbondedMethod=app.NoCutoff)
    (nonbonded,) = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)]
    return sum(nonbonded.getParticleParameters(i)[0]._value for i in range(nonbonded.getNumParticles()))


@pytest.fixture(scope="module")
def trialanine():
    return build_peptide("AAA")


def test_a_capped_peptide_has_trans_peptide_bonds_and_l_alanines(trialanine):
    topology, x, energy = trialanine
    assert [r.name for r in topology.residues()] == ["ACE", "ALA", "ALA", "ALA", "NME"]
    assert topology.getNumAtoms() == 42 and np.isfinite(energy)
    atoms = {(a.residue.index, a.name): a.index for a in topology.atoms()}
    p = x * 10  # Å
    for i in range(4):  # every peptide bond, caps included: C(i)–N(i+1) ≈ 1.33 Å and ω trans
        previous_ca = atoms.get((i, "CA"), atoms.get((i, "CH3")))
        next_ca = atoms.get((i + 1, "CA"), atoms.get((i + 1, "C") if i == 3 else None))
        c, n = p[atoms[(i, "C")]], p[atoms[(i + 1, "N")]]
        assert np.linalg.norm(c - n) == pytest.approx(1.33, abs=0.04)
        ends = (torch.as_tensor(v) for v in (p[previous_ca], c, n, p[next_ca]))
        assert abs(np.degrees(float(dihedral_from_points(*ends)))) > 160
    centres = chiral_centres(topology)
    assert len(centres) == 3 and bool((handedness(torch.tensor(x.reshape(1, -1)), centres) > 0).all())  # L


def test_free_termini_are_charged_and_the_sequence_sets_the_net_charge():
    """Chignolin GYDPETGTWG without caps: NH3+ and COO- termini, Asp and Glu: net charge −2."""
    topology, _, _ = build_peptide("GYDPETGTWG", caps="none")
    residues = list(topology.residues())
    names = {a.name for a in residues[0].atoms()} | {a.name for a in residues[-1].atoms()}
    assert {"H", "H2", "H3", "OXT"} <= names  # NH3+ (amber names its hydrogens H, H2, H3) and COO-
    assert _total_charge(topology) == pytest.approx(-2.0, abs=1e-6)
    assert _total_charge(build_peptide("KAE")[0]) == pytest.approx(0.0, abs=1e-6)  # capped: Lys+ and Glu- only
    assert _total_charge(build_peptide("KAK")[0]) == pytest.approx(2.0, abs=1e-6)


def test_a_built_peptide_loads_on_the_torch_force_field_with_obc1_at_openmm_s_energy(tmp_path, trialanine):
    """SBG's setting (amber14 + OBC1, 310 K): the torch backend takes it natively, with OpenMM's energy."""
    from mlmol.systems.forcefield import GeneralizedBorn

    topology, x, _ = trialanine
    path = tmp_path / "aaa.pdb"
    with open(path, "w") as handle:
        app.PDBFile.writeFile(topology, x * openmm.unit.nanometer, handle)
    molecule = from_pdb(path, forcefield=["amber14-all.xml"], implicit_solvent="obc1", temperature=310.0,
                        backend="auto", add_hydrogens=False)
    assert type(molecule.backend).__name__ == "TorchEnergy" and not molecule.notices()  # no fallback
    (term,) = [t for t in molecule.backend.forcefield.terms_ if isinstance(t, GeneralizedBorn)]
    assert term.model == "OBC1" and molecule.dim == 126
    assert set(molecule.torsions) == {"phi2", "psi2", "phi3", "psi3", "phi4", "psi4"}
    context = openmm.Context(molecule.system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(x)
    kj = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    u = float(molecule.energy(torch.tensor(x.reshape(1, -1)))[0])
    assert u == pytest.approx(kj / molecule.kT, rel=1e-9)  # reduced at 310 K


def test_bad_sequences_and_structures_are_refused_with_the_fix(trialanine):
    assert check_sequence(" GYDPETGTWG\n") == "GYDPETGTWG"
    for sequence, message in (("AaA", "D-amino acid"), ("AXA", "not one of the 20"), ("  ", "empty"),
                              ("A1A", "not one of the 20")):
        with pytest.raises(MlmolError, match=message):
            check_sequence(sequence)
    with pytest.raises(MlmolError, match="unknown caps"):
        build_peptide("AAA", caps="amide")
    topology, x, energy = trialanine
    with pytest.raises(MlmolError, match="came out D"):
        _check_structure(topology, -x, energy, "AAA")  # the mirror image: every Cα is D
    atoms = {(a.residue.index, a.name): a.index for a in topology.atoms()}
    clashing = x.copy()
    clashing[atoms[(4, "C")]] = clashing[atoms[(1, "CB")]] + 0.05  # NME's methyl onto the first Cβ
    with pytest.raises(MlmolError, match=r"clash after minimisation: ALA2 \w+ and NME5 C are [0-9.]+ Å apart"):
        _check_structure(topology, clashing, energy, "AAA")


def test_the_command_line_writes_the_pdb_atomically_and_exits_2_on_bad_input(tmp_path, capsys):
    out = tmp_path / "pep.pdb"
    assert main(["build", "GAP", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out and app.PDBFile(str(out)).topology.getNumAtoms() == 43
    written = out.read_bytes()
    assert main(["build", "GaP", "--out", str(out)]) == 2
    assert "D-amino acid" in capsys.readouterr().err and out.read_bytes() == written  # nothing lost
    assert main(["build", "GAP", "--out", str(tmp_path / "pep.txt")]) == 2
    assert ".pdb" in capsys.readouterr().err


def test_a_molecule_trains_at_the_temperature_given(tmp_path, capsys):
    """--temperature sets the molecule's kelvin (SBG's peptides: 310 K); toy systems refuse it."""
    from mlmol.config import make_config

    config = make_config(base={"system": {"pdb": "tests/data/glycine-dipeptide.pdb", "implicit_solvent": "obc1"}},
                         temperature=310.0)
    assert config["system"]["temperature"] == 310.0
    assert make_config("alanine-dipeptide", temperature=350.0)["system"]["temperature"] == 350.0
    assert main(["train", "double-well", "--temperature", "310", "--out", str(tmp_path / "r")]) == 2
    assert "applies to molecules" in capsys.readouterr().err
    assert main(["train", "alanine-dipeptide", "--temperature", "0", "--out", str(tmp_path / "r")]) == 2
    assert "positive kelvin" in capsys.readouterr().err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("example", sorted(pathlib.Path("examples").glob("*.yaml")), ids=lambda p: p.name)
def test_each_example_config_resolves_and_its_header_names_it(example):
    """The peptide configs in examples/ pass the checks a run makes before any data (their data counts, ladder
    and rungs against a peptide at 310 K in OBC1), and the command in the header trains from that file."""
    from mlmol.config import make_config
    from mlmol.rundir import read_yaml

    base = {**read_yaml(example), "system": {"pdb": "tests/data/glycine-dipeptide.pdb", "implicit_solvent": "obc1"}}
    config = make_config(base=base, temperature=310.0)
    assert config["data"]["n"] >= config["data"]["replicas"] * config["data"].get("rungs", 1)
    assert f"mlmol train examples/{example.name} " in example.read_text()


def test_a_peptide_s_defaults_are_the_schedule_measured_at_its_size(tmp_path, trialanine):
    """One residue keeps the alanine-dipeptide defaults; 2-5 residues get examples/peptide.yaml's schedule and
    6 or more examples/hexapeptide.yaml's, each file exactly its size's settings; a config's own values win."""
    from mlmol.config import MOLECULE_DEFAULTS, PEPTIDE_SCHEDULES, make_config, peptide_schedule, residues
    from mlmol.rundir import read_yaml

    topology, x, _ = trialanine
    path = tmp_path / "aaa.pdb"
    with open(path, "w") as handle:
        app.PDBFile.writeFile(topology, x * openmm.unit.nanometer, handle)
    assert residues({"pdb": str(path)}) == 3 and residues({"pdb": "tests/data/glycine-dipeptide.pdb"}) == 1
    assert [peptide_schedule(n) and peptide_schedule(n)[0] for n in (1, 2, 5, 6, 10)] == [
        None, "examples/peptide.yaml", "examples/peptide.yaml", "examples/hexapeptide.yaml", "examples/hexapeptide.yaml"]
    for _, example, settings in PEPTIDE_SCHEDULES:
        assert read_yaml(example) == settings
    one = make_config(base={"system": {"pdb": "tests/data/glycine-dipeptide.pdb"}})
    assert one["data"]["n"] == MOLECULE_DEFAULTS["data"]["n"] and one["recipe"]["steps"] == 1000
    three = make_config(base={"system": {"pdb": str(path)}})
    assert (three["data"]["n"], three["data"]["replicas"], three["data"]["rungs"], three["recipe"]["steps"]) == (
        800_000, 64, 2, 3000)
    own = make_config(base={"system": {"pdb": str(path)}, "data": {"n": 5000}}, steps=10)
    assert (own["data"]["n"], own["data"]["replicas"], own["recipe"]["steps"]) == (5000, 64, 10)


def test_a_ladder_whose_neighbours_rarely_swap_is_named_with_its_fix():
    """Swap acceptance under 0.1 between neighbours warns with their temperatures and the setting to change;
    a ladder that mixes (and pairs never tried, NaN) stay silent."""
    import warnings

    from mlmol.samplers.md import _warn_rare_swaps

    kelvin = torch.tensor([310.0, 400.0, 520.0, 680.0])
    with pytest.warns(UserWarning, match=r"400–520 K \(0\.04\).*larger COUNT"):
        _warn_rare_swaps(torch.tensor([0.3, 0.04, 0.2]), kelvin)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_rare_swaps(torch.tensor([0.3, 0.1, float("nan")]), kelvin)


def test_each_backbone_torsion_knows_its_residue():
    """torsion_residues has backbone_torsions' keys and names the residue each torsion turns in: in
    Ace-Pro-Gly-Ala-Nme φ2/ψ2 are proline's, φ3/ψ3 glycine's; a dipeptide's single φ/ψ is its residue's."""
    from mlmol.systems.molecules import backbone_torsions, torsion_residues

    topology = build_peptide("PGA")[0]
    names = torsion_residues(topology)
    assert list(names) == list(backbone_torsions(topology))
    assert [names[f"phi{i}"] for i in (2, 3, 4)] == ["PRO", "GLY", "ALA"] and names["psi3"] == "GLY"
    assert torsion_residues(build_peptide("G")[0]) == {"phi": "GLY", "psi": "GLY"}


def test_the_openmm_engine_says_it_runs_no_ladder(monkeypatch):
    """data.engine openmm runs plain MD: a config with a ladder is told its data have no tempering, and the
    ladder's options never reach the OpenMM sampler; without a ladder nothing is said."""
    import warnings

    from mlmol import run
    from mlmol.config import make_config

    seen = []
    monkeypatch.setattr(run.samplers, "molecular_dynamics", lambda system, n, **options: seen.append(options))
    config = make_config(system="alanine-dipeptide", engine="openmm")
    system = run.build_system(config)
    with pytest.warns(UserWarning, match="data.ladder and data.rungs .* torch engine only"):
        run.make_data(system, config)
    assert not {"ladder", "rungs", "replicas", "compile"} & set(seen[-1])
    config["data"]["ladder"] = None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run.make_data(system, config)


def test_evaluate_reports_every_residue_s_phi_basins(tmp_path, trialanine):
    """30 copies of the built Ace-Ala3-Nme (every φ < 0) at weight 1 and 10 of its mirror image (every φ > 0)
    at weight 2: each residue's ΔF(φ>0 − φ<0) is exactly −log(20/30), on 10 and 30 effective samples. A
    residue whose own torsion says φ > 0 everywhere has no φ < 0 sample: its entry says so, the others
    keep theirs (each residue is read through its own torsion)."""
    from mlmol.data import Samples
    from mlmol.evaluation import evaluate, summary_rows

    topology, x, _ = trialanine
    path = tmp_path / "aaa.pdb"
    with open(path, "w") as handle:
        app.PDBFile.writeFile(topology, x * openmm.unit.nanometer, handle)
    molecule = from_pdb(path, forcefield=["amber14-all.xml"], backend="torch", add_hydrogens=False)
    flat = torch.tensor(x.reshape(1, -1))
    configurations = torch.cat([flat.repeat(30, 1), -flat.repeat(10, 1)])
    log_w = torch.cat([torch.zeros(30, dtype=torch.float64), torch.full((10,), np.log(2.0), dtype=torch.float64)])
    samples = Samples(configurations, log_w, torch.zeros(40, dtype=torch.float64))
    residues = evaluate(molecule, samples)["delta_f_residues"]
    assert list(residues) == ["phi2", "phi3", "phi4"]
    for entry in residues.values():
        assert entry["value"] == pytest.approx(-np.log(20 / 30), abs=1e-12)
        assert entry["effective_samples"] == pytest.approx([10.0, 30.0])
    assert sum("phi3 > 0" in name for name, _ in summary_rows(evaluate(molecule, samples))) == 1
    molecule.variables["phi3"] = lambda x: torch.ones(x.shape[:-1], dtype=x.dtype)  # φ3 > 0 in every sample
    residues = evaluate(molecule, samples)["delta_f_residues"]
    assert "no weighted samples in state b" in residues["phi3"]["unavailable"]
    assert residues["phi2"]["value"] == pytest.approx(residues["phi4"]["value"]) == pytest.approx(-np.log(2 / 3))


def test_each_residue_s_helix_and_extended_basins_in_the_generator_and_the_reference(tmp_path, trialanine):
    """30 copies of the extended Ace-Ala3-Nme at weight 1 and 10 of the helical one at weight 2: each
    residue's ΔF(helix − extended) is exactly −log(20/30) on 10 and 30 effective samples. In reference
    frames of 4 chains, one helical and three extended, it is log 3 by counting, and a chain bootstrap
    gives it an error; a reference without a helical frame has none."""
    from mlmol.data import Samples
    from mlmol.evaluation import ReferenceSamples, compare_to_reference, evaluate, summary_rows

    topology, extended, _ = trialanine
    _, helix, _ = build_peptide("AAA", conformation="helix")
    path = tmp_path / "aaa.pdb"
    with open(path, "w") as handle:
        app.PDBFile.writeFile(topology, extended * openmm.unit.nanometer, handle)
    molecule = from_pdb(path, forcefield=["amber14-all.xml"], backend="torch", add_hydrogens=False)
    flat_e, flat_h = (torch.tensor(x.reshape(1, -1)) for x in (extended, helix))
    log_w = torch.cat([torch.zeros(30, dtype=torch.float64), torch.full((10,), np.log(2.0), dtype=torch.float64)])
    samples = Samples(torch.cat([flat_e.repeat(30, 1), flat_h.repeat(10, 1)]), log_w, torch.zeros(40).double())
    metrics = evaluate(molecule, samples)
    assert list(metrics["helix_residues"]) == ["phi2", "phi3", "phi4"]
    for entry in metrics["helix_residues"].values():
        assert entry["value"] == pytest.approx(-np.log(20 / 30), abs=1e-12)
        assert entry["effective_samples"] == pytest.approx([10.0, 30.0])
    frames = torch.stack([flat_h[0], flat_e[0], flat_e[0], flat_e[0]]).repeat(150, 1)  # frame-major, 4 chains
    samples = Samples(frames[:300], torch.zeros(300).double(), molecule.energy(frames[:300]))
    helix_ref = compare_to_reference(molecule, samples, ReferenceSamples(frames, chains=4))["helix_residues"]
    for entry in helix_ref.values():
        assert entry["value"] == pytest.approx(np.log(3.0), abs=1e-12) and entry["stderr"] > 0.1
    rows = dict(summary_rows({**metrics, "reference": {"helix_residues": helix_ref}}))
    assert rows["ΔF = F(phi3 helix) − F(phi3 extended), reference"].startswith(f"{np.log(3.0):+.3f} ± ")
    assert rows["ΔF = F(phi3 helix) − F(phi3 extended)"].startswith(f"{-np.log(20 / 30):+.3f} ± ")
    only_extended = ReferenceSamples(flat_e.repeat(600, 1), chains=4)
    assert "unavailable" in compare_to_reference(molecule, samples, only_extended)["helix_residues"]["phi2"]


def test_the_helical_basin_is_phi_below_zero_with_psi_inside_its_bounds():
    """Frames on either side of each ψ bound, and a left-handed helix (φ > 0), in the helix and
    extended masks: ψ −115° and 45° helical, −125° and 55° extended, φ > 0 in neither."""
    from types import SimpleNamespace

    from mlmol.evaluation import helix_states

    angles = torch.deg2rad(torch.tensor([[-70.0, -115.0], [-70.0, 45.0], [-70.0, -125.0], [-70.0, 55.0],
                                         [60.0, 40.0], [-150.0, 150.0]], dtype=torch.float64))
    system = SimpleNamespace(variables={"phi3": lambda x: x[..., 0], "psi3": lambda x: x[..., 1]})
    states = helix_states(system, "phi3")
    assert states["phi3 helix"](angles).tolist() == [True, True, False, False, False, False]
    assert states["phi3 extended"](angles).tolist() == [False, False, True, True, False, True]
    assert helix_states(system, "phi4") is None  # no such residue


def test_the_reference_distances_see_bad_samples_and_reweighting_removes_them(tmp_path, trialanine):
    """Generator samples from the reference's own distribution plus mirrored, stretched ones: raw
    energy-W2, torus-W2 and TICA-W2 far above the reference's noise floor; with the bad ones at zero
    weight the reweighted distances come down to the floor. The good samples are a few of many, so
    that the reweighted draws must use the weights of every sample (the weights of an n-sample subset
    would rest on about 30 samples); its floor at the generator's effective count lies above the floor."""
    from mlmol.data import Samples
    from mlmol.evaluation import ReferenceSamples, compare_to_reference, summary_rows
    from mlmol.run import load_reference

    topology, x, _ = trialanine
    path = tmp_path / "aaa.pdb"
    with open(path, "w") as handle:
        app.PDBFile.writeFile(topology, x * openmm.unit.nanometer, handle)
    molecule = from_pdb(path, forcefield=["amber14-all.xml"], implicit_solvent="obc1", backend="torch",
                        add_hydrogens=False)
    generator = torch.Generator().manual_seed(0)
    flat = torch.tensor(x.reshape(1, -1))

    def draw(n):
        return flat + 0.004 * torch.randn(n, flat.shape[1], generator=generator, dtype=torch.float64)

    good, bad = draw(300), -1.03 * draw(9700)
    configurations = torch.cat([good, bad])
    log_w = torch.cat([torch.zeros(300), torch.full((9700,), -torch.inf)]).double()
    samples = Samples(configurations, log_w, molecule.energy(configurations))
    reference = ReferenceSamples(draw(1200), chains=4, md=draw(400).reshape(4, 100, -1).numpy())
    result = compare_to_reference(molecule, samples, reference, n=2000, seed=0)
    assert result["n"] == 600 and result["effective"] == 300  # at most a half of the reference
    assert result["tica"] == {"lag_frames": 10, "trajectories": 4, "frames": 100}
    for name in ("energy_w2", "torus_w2", "tica_w2"):
        d = result[name]
        assert d["raw"] > 5 * d["floor"], (name, d)
        assert d["reweighted"] < 2 * d["floor_reweighted"], (name, d)
        assert d["floor_reweighted"] > d["floor"], (name, d)  # 300 distinct frames, not 600
    without_md = compare_to_reference(molecule, samples, ReferenceSamples(reference.x, chains=4), seed=0)
    assert "unavailable" in without_md["tica_w2"] and without_md["torus_w2"] == result["torus_w2"]
    metrics = {"n": 10_000, "ess": 300.0, "ess_fraction": 0.03, "reference": without_md}
    rows = dict(summary_rows(metrics))
    assert any(name.startswith("torus-W2") for name in rows)
    assert rows["TICA-W2 against the reference"].startswith("not computed: the reference has no MD")
    file = tmp_path / "reference.npz"
    np.savez(file, x=reference.x.numpy(), chains=4, md=reference.md)
    loaded = load_reference(file, molecule)
    assert loaded.x.shape == (1200, 126) and loaded.chains == 4 and loaded.md.shape == (4, 100, 126)
    np.savez(file, x=reference.x.numpy(), chains=7)
    with pytest.raises(MlmolError, match="do not split into chains=7"):
        load_reference(file, molecule)
    np.savez(file, x=reference.x.numpy(), md=reference.md[:, :, :60])
    with pytest.raises(MlmolError, match=r"md must be MD trajectories \[trajectories, frames, 126\]"):
        load_reference(file, molecule)
    np.savez(file, x=reference.x.numpy()[:, :60])
    with pytest.raises(MlmolError, match="60 coordinates"):
        load_reference(file, molecule)
    np.savez(file, positions=reference.x.numpy())
    with pytest.raises(MlmolError, match="no array 'x'"):
        load_reference(file, molecule)
    with pytest.raises(MlmolError, match="fewer than 100"):
        compare_to_reference(molecule, samples, ReferenceSamples(reference.x[:150]))
    nothing = Samples(configurations, torch.full((10_000,), -torch.inf, dtype=torch.float64), samples.energy)
    with pytest.raises(MlmolError, match="every sample has zero weight"):
        compare_to_reference(molecule, nothing, reference)


def test_the_same_sequence_always_gives_the_same_structure():
    """PeptideBuilder's rotamers and Modeller's hydrogen nudges are random: seeded for the build, so a
    sequence builds the same structure every time, and the caller's random stream is left as it was."""
    import random

    random.seed(123)
    expected = random.random()
    random.seed(123)
    first, second = build_peptide("GYDPETGTWG", caps="none"), build_peptide("GYDPETGTWG", caps="none")
    assert random.random() == expected  # the global stream untouched
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2] == second[2]


def test_a_peptide_report_shows_the_reference_beside_the_generator(tmp_path, trialanine):
    """evaluate --reference then report: TICA-W2 in the metrics, a reference column in every residue's
    Ramachandran row, the reference's energies and TICA projections; a reference file that is gone leaves
    the figures without it and says so."""
    import json
    import shutil

    import yaml

    topology, x, _ = trialanine
    pdb = tmp_path / "aaa.pdb"
    with open(pdb, "w") as handle:
        app.PDBFile.writeFile(topology, x * openmm.unit.nanometer, handle)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"data": {"n": 512, "interval": 5, "equilibration": 50, "replicas": 4,
                                               "compile": False},
                                      "flow": {"blocks": 1, "hidden": [16]}, "recipe": {"steps": 3},
                                      "evaluate": {"n": 300}}))
    run = tmp_path / "run"
    assert main(["train", str(config), "--pdb", str(pdb), "--implicit-solvent", "obc1", "--out", str(run)]) == 0
    with np.load(run / "data.npz") as data:  # the MD data stand in for a reference and for its MD (plumbing only)
        np.savez(tmp_path / "reference.npz", x=data["x"], md=data["x"][:256].reshape(2, 128, -1))
    assert main(["evaluate", str(run), "--reference", str(tmp_path / "reference.npz")]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["reference"]["tica"] == {"lag_frames": 10, "trajectories": 2, "frames": 128}
    assert {"raw", "reweighted", "floor", "floor_reweighted"} <= metrics["reference"]["tica_w2"].keys()
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "TICA projections" in page and "Reference: the configurations in" in page
    shutil.move(tmp_path / "reference.npz", tmp_path / "moved.npz")
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "TICA projections" not in page and "is gone" in page
