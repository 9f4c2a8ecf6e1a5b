"""The organic-molecule source (issue 19): RDKit enumeration, coverage, molecule-disjoint split, conformers."""

import json
import shutil

import numpy as np
import pytest
from ase.io import read, write

from mlwfcalc.cli import main
from mlwfcalc.data import LabelledDataset
from mlwfcalc.data.molecules import conformer, coverage, enumerate_molecules, families, split_molecules
from mlwfcalc.training.evaluation import groups_of

Chem = pytest.importorskip("rdkit.Chem")


@pytest.fixture(scope="module")
def molecules():
    return enumerate_molecules(80, max_heavy=9, elements="CNOF", seed=0)


def test_enumerated_molecules_are_distinct_valid_neutral_closed_shells(molecules):
    assert len({m.smiles for m in molecules}) == 80
    assert [m.smiles for m in enumerate_molecules(80, max_heavy=9, elements="CNOF", seed=0)] == \
        [m.smiles for m in molecules]  # seeded
    for m in molecules:
        mol = Chem.AddHs(Chem.MolFromSmiles(m.smiles))
        assert Chem.MolToSmiles(Chem.MolFromSmiles(m.smiles)) == m.smiles  # canonical
        assert 1 <= m.heavy_atoms <= 9 and {a.GetSymbol() for a in mol.GetAtoms()} <= {"C", "N", "O", "F", "H"}
        assert Chem.GetFormalCharge(mol) == 0 and sum(a.GetAtomicNum() for a in mol.GetAtoms()) % 2 == 0
        assert not mol.HasSubstructMatch(Chem.MolFromSmarts("[OX2][OX2]"))  # no peroxides
    report = coverage(molecules)
    assert report["molecules"] == 80 and set(report["elements"]) == {"C", "N", "O", "F"}
    assert max(report["heavy_atoms"]) >= 8 and report["rings"].get(0, 0) < 80  # large ones and rings too
    groups = report["functional_groups"]  # the motifs random growth rarely closes are there too
    assert groups["aromatic ring"] >= 3 and groups["amide"] + groups["ester"] + groups["carboxylic acid"] >= 3
    assert sum(v > 0 for v in report["functional_groups"].values()) >= 8


def test_the_split_is_by_molecule_and_spans_the_sizes(molecules):
    parts = split_molecules(molecules, (0.8, 0.1, 0.1), seed=0)
    smiles = {name: {m.smiles for m in group} for name, group in parts.items()}
    assert not (smiles["train"] & smiles["val"]) and not (smiles["train"] & smiles["test"])
    assert not (smiles["val"] & smiles["test"])
    assert sum(map(len, smiles.values())) == 80 and len(smiles["test"]) >= 6
    assert len({m.heavy_atoms for m in parts["test"]}) >= 4


def test_conformers_are_sane_3d_structures(molecules):
    for m in molecules[::8]:
        atoms = conformer(m)
        assert atoms.info["smiles"] == m.smiles
        assert sum(atoms.numbers > 1) == m.heavy_atoms
        distances = atoms.get_all_distances()[np.triu_indices(len(atoms), 1)]
        assert distances.size == 0 or distances.min() > 0.85


def test_molecules_command_then_md_from_every_molecule(tmp_path, capsys):
    folder = tmp_path / "mols"
    assert main(["molecules", "-o", str(folder), "--n", "30", "--seed", "2"]) == 0
    splits = {name: read(folder / f"{name}.xyz", ":") for name in ("train", "val", "test")}
    assert sum(map(len, splits.values())) == 30
    assert not {a.info["smiles"] for a in splits["train"]} & {a.info["smiles"] for a in splits["test"]}
    assert json.loads((folder / "coverage.json").read_text())["all"]["molecules"] == 30
    assert main(["molecules", "-o", str(folder)]) == 2  # never overwrites
    capsys.readouterr()
    assert main(["sample", str(folder / "val.xyz"), "--every-frame", "-o", str(tmp_path / "md.xyz"),
                 "--temperature", "300,600", "--frames", "2", "--interval", "5", "--equilibration", "10", "-q"]) == 0
    frames = read(tmp_path / "md.xyz", ":")
    assert len(frames) == 2 * 2 * len(splits["val"])
    assert {f.info["smiles"] for f in frames} == {a.info["smiles"] for a in splits["val"]}
    assert {f.info["target_temperature_K"] for f in frames} == {300.0, 600.0}

    # a stopped run resumes after its last finished molecule: the first one's frames (marked here by a
    # shift) are taken from OUTPUT.part, not recomputed, and the rest is what the full run writes
    write(tmp_path / "two.xyz", splits["train"][:2])
    args = ["--every-frame", "--temperature", "300", "--frames", "2", "--interval", "5", "--equilibration", "10", "-q"]
    assert main(["sample", str(tmp_path / "two.xyz"), "-o", str(tmp_path / "full.xyz"), *args]) == 0
    full = read(tmp_path / "full.xyz", ":")
    marked = [f.copy() for f in full[:2]]
    for f in marked:
        f.positions += 0.001
    write(tmp_path / "resumed.xyz.part", marked, format="extxyz")
    assert main(["sample", str(tmp_path / "two.xyz"), "-o", str(tmp_path / "resumed.xyz"), *args]) == 0
    resumed = read(tmp_path / "resumed.xyz", ":")
    assert len(resumed) == 4 and not (tmp_path / "resumed.xyz.part").exists()
    np.testing.assert_allclose(resumed[0].positions, marked[0].positions)
    for a, b in zip(resumed[2:], full[2:]):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-8)
    # a kill while appending leaves a molecule cut short: it is dropped and sampled again
    write(tmp_path / "cut.xyz.part", marked, format="extxyz")
    with open(tmp_path / "cut.xyz.part", "a") as handle:
        handle.write("19\nProperties=species:S:1:pos:R:3 start_index=1\nC 0.0 0.0")
    assert main(["sample", str(tmp_path / "two.xyz"), "-o", str(tmp_path / "cut.xyz"), *args]) == 0
    cut = read(tmp_path / "cut.xyz", ":")
    np.testing.assert_allclose(cut[0].positions, marked[0].positions)
    np.testing.assert_allclose(cut[3].positions, full[3].positions, atol=1e-8)
    other = [f.copy() for f in marked]  # another run's frames (other temperature): refused, never mixed
    for f in other:
        f.info["target_temperature_K"] = 500.0
    write(tmp_path / "other.xyz.part", other, format="extxyz")
    assert main(["sample", str(tmp_path / "two.xyz"), "-o", str(tmp_path / "other.xyz"), *args]) == 2
    assert "--overwrite" in capsys.readouterr().err

    # the labels remember each frame's molecule, and every split of them is molecule-disjoint
    assert main(["label", str(tmp_path / "full.xyz"), "-o", str(tmp_path / "labels.db"), "--basis", "sto-3g",
                 "--workers", "1", "-q"]) == 0
    dataset = LabelledDataset(tmp_path / "labels.db")
    assert [s.molecule for s in dataset.samples] == [f.info["smiles"] for f in full]
    for seed in range(4):
        first, second = dataset.split([1, 1], seed)
        assert len(first) == len(second) == 2  # both conformers of one molecule in each part
        assert len({dataset[int(i)].molecule for i in first}) == 1
        assert not {dataset[int(i)].molecule for i in first} & {dataset[int(i)].molecule for i in second}
    # the split follows the molecules, not the order of the rows: the same labels in another order split alike
    reordered = LabelledDataset(tmp_path / "labels.db")
    reordered.samples.reverse()
    for seed in range(4):
        assert ([dataset.molecules_of(part) for part in dataset.split([1, 1], seed)]
                == [reordered.molecules_of(part) for part in reordered.split([1, 1], seed)])
    # a model records the molecules it trained and validated on; a run from its weights refuses a split that
    # would validate on one it trained on
    from mlwfcalc.nn.model import ModelConfig
    from mlwfcalc.training import TrainConfig, Trainer
    from mlwfcalc.validation import InputError

    def config(output, seed, **extra):
        return TrainConfig(dataset=str(tmp_path / "labels.db"), output=str(tmp_path / output), seed=seed,
                           model=ModelConfig(basis="sto-3g", channels=4, num_layers=1, num_radial=4, radial_hidden=8),
                           n_train=1, n_val=1, batch_size=2, max_steps=2, val_every=2, warmup_steps=1, threads=1,
                           **extra)

    Trainer(config("first", 0), progress=False).run()
    record = json.loads((tmp_path / "first" / "best" / "config.json").read_text())["training"]
    train, val = dataset.split([1, 1], 0)
    assert (record["train_molecules"], record["val_molecules"]) == (dataset.molecules_of(train), dataset.molecules_of(val))
    swapped = next(seed for seed in range(1, 20) if dataset.molecules_of(dataset.split([1, 1], seed)[1]) == record["train_molecules"])
    with pytest.raises(InputError, match="trained on by that model"):
        Trainer(config("second", swapped, init_from=str(tmp_path / "first" / "best")), progress=False)
    # ... unless it names its start's validation molecules: a fine-tune on more labels is validated as its start was
    names = tmp_path / "val_molecules.json"
    names.write_text(json.dumps(record["val_molecules"]))
    kept = Trainer(config("kept", swapped, init_from=str(tmp_path / "first" / "best"), validation_molecules=str(names)),
                   progress=False)
    assert kept.data.dataset.molecules_of(kept.data.val_index) == record["val_molecules"]
    assert kept.data.dataset.molecules_of(kept.data.train_index) == record["train_molecules"]
    # so does a transfer fine-tune (its labels here: the same PBE energies, forces and dipoles), and its model
    # records what its weights have seen for the next run
    from mlwfcalc.training.transfer import TransferConfig, TransferTrainer

    def transfer(output, seed, start="first"):
        return TransferConfig(high_level=str(tmp_path / "labels.db"), init_from=str(tmp_path / start / "best"),
                              output=str(tmp_path / output), seed=seed, n_train=1, n_val=1, batch_size=2,
                              max_steps=2, val_every=2, warmup_steps=1, threads=1, head_epochs=2, hidden=[4])

    with pytest.raises(InputError, match="trained on by that model"):
        TransferTrainer(transfer("tuned-swapped", swapped), progress=False)
    # a fine-tune on the molecule its start never saw (a start that records no molecules, so it can only warn):
    # only the fine-tune's own record can tell the next run that its weights have seen that molecule
    shutil.copytree(tmp_path / "first" / "best", tmp_path / "unrecorded" / "best")
    unrecorded_file = tmp_path / "unrecorded" / "best" / "config.json"
    unrecorded = json.loads(unrecorded_file.read_text())
    for key in ("train_molecules", "val_molecules"):
        del unrecorded["training"][key]
    unrecorded_file.write_text(json.dumps(unrecorded))
    with pytest.warns(UserWarning, match="does not record the molecules"):
        TransferTrainer(transfer("tuned", swapped, start="unrecorded"), progress=False).run()
    tuned = json.loads((tmp_path / "tuned" / "best" / "config.json").read_text())
    assert "train_molecules" not in tuned["training"]
    assert (tuned["transfer"]["train_molecules"], tuned["transfer"]["val_molecules"]) == (
        record["val_molecules"], record["train_molecules"])
    with pytest.raises(InputError, match="trained on by that model"):
        Trainer(config("third", 0, init_from=str(tmp_path / "tuned" / "best")), progress=False)
    # fit-domain rebuilds the recorded split or refuses: here the record is made to disagree with it
    capsys.readouterr()
    record_file = tmp_path / "first" / "best" / "config.json"
    saved = json.loads(record_file.read_text())
    saved["training"]["val_molecules"] = saved["training"]["train_molecules"]
    record_file.write_text(json.dumps(saved))
    assert main(["fit-domain", str(tmp_path / "first" / "best"), str(tmp_path / "labels.db"), "-q"]) == 2
    assert "not the 1 that" in capsys.readouterr().err
    # and evaluation tables can be grouped by size and by functional group
    by_size, by_family = groups_of(dataset, "size"), groups_of(dataset, "family")
    assert sorted(i for members in by_size.values() for i in members) == list(range(4))
    for name, members in by_family.items():
        assert all(name in (families(dataset[i].molecule) or ["none of these"]) for i in members)


def test_hydrogen_fluoride_keeps_its_smiles_through_extxyz_and_the_label_database(tmp_path):
    """ASE's extxyz reader turns smiles=F into the boolean False; the frame, the row and the sample still say F."""
    from ase import Atoms

    atoms = Atoms("HF", positions=[(0, 0, 0), (0, 0, 0.92)], info={"smiles": "F"})
    write(tmp_path / "hf.xyz", [atoms])
    assert main(["label", str(tmp_path / "hf.xyz"), "-o", str(tmp_path / "hf.db"), "--basis", "sto-3g",
                 "--workers", "1", "-q"]) == 0
    assert [s.molecule for s in LabelledDataset(tmp_path / "hf.db").samples] == ["F"]
