"""How a model is made and scored: training, fine-tuning, the energy head, the domain, evaluation.

One job per module:

* :mod:`~mlwfcalc.training.trainer`: ``Trainer``, a Kohn-Sham model trained on F (``mlwfcalc train``):
  the losses, the loop, validation and the export of the best model;
* :mod:`~mlwfcalc.training.optimisation`: ``TrainConfig`` and the ``OptimisationSettings`` every run
  shares, the learning-rate schedule, the optimiser, the EMA weights and the batch order;
* :mod:`~mlwfcalc.training.checkpoint`: the run directory: atomic checkpoints and the checks before a
  run resumes or starts from a model's weights, ``log.csv`` and the learning curve;
* :mod:`~mlwfcalc.training.transfer`: fine-tuning through the wavefunction on high-level energies,
  forces and dipoles (``mlwfcalc train --transfer``);
* :mod:`~mlwfcalc.training.energy_fit`: an energy head fitted on a frozen network
  (``mlwfcalc train-energy``);
* :mod:`~mlwfcalc.training.domain_fit`: a model's training domain and its calibrated uncertainty
  (``mlwfcalc fit-domain``, and at the end of ``train``);
* :mod:`~mlwfcalc.training.distributed`: DistributedDataParallel plumbing (``train --ddp N``, torchrun);
* :mod:`~mlwfcalc.training.evaluation`: a model's accuracy on label databases (``mlwfcalc evaluate``).
"""

from .optimisation import TrainConfig
from .trainer import Trainer

__all__ = ["TrainConfig", "Trainer"]
