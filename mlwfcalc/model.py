"""The model object: network, energy head, uncertainty, training domain and level of theory, in one.

:class:`MLWFModel` is what a model directory holds (:func:`mlwfcalc.io.save_model` writes it,
:func:`mlwfcalc.io.read_model` reads it, each in one call) and what every front end runs. Its one
forward gives, for a batch of molecules, F, the last layer's node features, the total energies and
the uncertainties: the energy is assembled here and nowhere else. (The energy-head fit,
:mod:`mlwfcalc.training.energy_fit`, precomputes the same sum for a frozen network.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from pyscf import gto
from torch import nn

from .domain import TrainingDomain
from .energy import EnergyHead, reference_terms
from .nn.graph import Batch
from .nn.model import HamiltonianModel
from .theory import LevelOfTheory
from .uncertainty import FeatureDistance
from .validation import InputError


@dataclass
class ModelOutput:
    """One forward pass over a batch of ``B`` molecules with ``N`` atoms.

    Attributes:
        fock: ``(B, nmax, nmax)`` Kohn-Sham matrices, Hartree, PySCF AO order, zero padded (network
            dtype and device).
        nodes: ``(N, K, C)`` last-layer node features.
        energy: ``(B,)`` total energies, Hartree, float64 on the host; None when not asked.
        uncertainty: ``(B,)`` expected MAE of each F, Hartree, float64 on the host; None without a
            fitted uncertainty.
    """

    fock: torch.Tensor
    nodes: torch.Tensor
    energy: torch.Tensor | None = None
    uncertainty: torch.Tensor | None = None


class MLWFModel(nn.Module):
    """A trained model: everything needed to predict, and the record of how it was made.

    Args:
        network: the :class:`~mlwfcalc.nn.model.HamiltonianModel` that predicts F.
        theory: the level of theory of F and of the training labels.
        energy_head: the fitted :class:`~mlwfcalc.energy.EnergyHead`, or None (no energies).
        uncertainty: the fitted :class:`~mlwfcalc.uncertainty.FeatureDistance`, or None.
        domain: the :class:`~mlwfcalc.domain.TrainingDomain`, or None (unknown: nothing is refused).
        record: provenance kept in ``config.json`` as is: ``"training"`` (the network's run),
            ``"energy_training"`` (the head's fit), optionally ``"preliminary"`` (why the model is not
            fit for use), ``"charges"`` (the total charges it answers for, default ``[0]``) and
            ``"transfer"`` (a fine-tuning run on high-level labels, :mod:`mlwfcalc.training.transfer`: the
            energies, forces and dipoles then follow ``transfer["high_level"]``, F stays at ``theory``),
            ``"functional_fit"`` (a run that trained a functional route end to end,
            :mod:`mlwfcalc.training.functional_fit`; all stays at ``theory``)
            and ``"orbital_subspace"`` (``{"overlap_threshold": t, ...}``: its orbitals are solved in the
            overlap eigenvectors with eigenvalue ``>= t``, :func:`~mlwfcalc.electronic.solve_orbitals`;
            the rest of the entry says how ``t`` was chosen).
    """

    def __init__(self, network: HamiltonianModel, theory: LevelOfTheory, energy_head: EnergyHead | None = None,
                 uncertainty: FeatureDistance | None = None, domain: TrainingDomain | None = None,
                 record: dict | None = None):
        super().__init__()
        self.network = network
        self.theory = theory
        self.energy_head = energy_head
        self.uncertainty = uncertainty
        self.domain = domain
        self.record = dict(record or {})
        self.check_parts()

    def check_parts(self) -> None:
        """Refuse an energy head or uncertainty whose inputs the network does not give."""
        for part, name in ((self.energy_head, "energy head"), (self.uncertainty, "uncertainty")):
            if part is None:
                continue
            features = part.config.features
            width = self.network.invariant_width(features)
            elements = part.config.elements
            have = part.config.num_scalars if name == "energy head" else part.config.width
            if have != width or set(elements) != set(self.network.config.elements):
                raise InputError(f"the {name} (elements {elements}, {have} {features} features) does not fit the "
                                 f"network (elements {self.network.config.elements}, {width} {features} features); "
                                 f"refit it (`mlwfcalc {'train-energy' if name == 'energy head' else 'fit-domain'}`)")

    @property
    def elements(self) -> list[int]:
        return list(self.network.config.elements)

    @property
    def charges(self) -> list[int]:
        return list(self.record.get("charges", [0]))

    @property
    def overlap_subspace(self) -> float:
        """The overlap eigenvalue below which its orbitals drop basis directions (0: the whole basis)."""
        return float(self.record.get("orbital_subspace", {}).get("overlap_threshold", 0.0))

    @property
    def energy_level(self) -> str:
        """The level of theory of the energies and forces: F's (``theory.name``), or for a transfer model
        the high level it was fine-tuned on (``record["transfer"]["high_level"]``)."""
        return self.record.get("transfer", {}).get("high_level", self.theory.name)

    @property
    def energy_route(self) -> str:
        """The energy route recommended for this model (``record["energy_route"]["recommended"]``, chosen on
        its own validation data by ``benchmarks/energy_routes.py``): ``"ml"`` (the energy head),
        ``"harris"`` or ``"variational"``; without a record, ``"ml"`` when it has an energy head, else
        ``"harris"``."""
        chosen = self.record.get("energy_route", {}).get("recommended")
        return chosen or ("ml" if self.energy_head is not None else "harris")

    def forward(self, batch: Batch, moles: Sequence[gto.Mole] | None = None,
                positions: Sequence[torch.Tensor] | None = None, energy: bool = False) -> ModelOutput:
        """F, node features, and (``energy=True``) total energies and (when fitted) uncertainties.

        ``moles`` and ``positions`` (per molecule, Bohr, the tensors ``batch.positions`` was made from,
        so forces flow back to them) are needed by the electronic energy terms (``"half-core"``,
        ``"band"``); the shipped heads (term ``"none"``) use neither.
        """
        fock, nodes = self.network.fock_and_nodes(batch)
        out = ModelOutput(fock=fock, nodes=nodes)
        if self.uncertainty is not None:
            features = self.network.invariants(nodes.detach(), self.uncertainty.config.features)
            out.uncertainty = self.uncertainty(features, batch.numbers, batch.molecule, batch.num_molecules).cpu()
        if energy:
            out.energy = self.energy(batch, fock, nodes, moles, positions)
        return out

    def energy(self, batch: Batch, fock: torch.Tensor, nodes: torch.Tensor, moles: Sequence[gto.Mole] | None,
               positions: Sequence[torch.Tensor] | None) -> torch.Tensor:
        """Total energies ``(B,)`` (Hartree, float64, host): the head's atomic sum plus its electronic terms."""
        head = self.energy_head
        if head is None:
            raise InputError("this model has no energy head: fit one with `mlwfcalc train-energy`, or use the "
                             "variational DFT energy (mode='variational')")
        atomic = head(self.network.invariants(nodes, head.config.features), batch.numbers).to("cpu")
        energies = torch.zeros(batch.num_molecules, dtype=torch.float64).index_add(0, batch.molecule.cpu(), atomic)
        if head.config.term == "none":
            return energies
        if moles is None or positions is None:
            raise ValueError(f"the {head.config.term!r} energy term needs each molecule's Mole and positions")
        numbers = torch.split(batch.numbers.cpu(), [m.natm for m in moles])
        return energies + torch.stack([reference_terms(head.config.term, m, z, p, f[:m.nao, :m.nao].cpu())
                                       for m, z, p, f in zip(moles, numbers, positions, fock)])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
