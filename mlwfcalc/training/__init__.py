"""How a model is made and scored: training, fine-tuning, the energy head, the domain, evaluation.

One job per module:

* :mod:`~mlwfcalc.training.trainer`: ``TrainConfig`` and ``Trainer``, a Kohn-Sham model trained on F
  (``mlwfcalc train``), with the checkpoints and the optimisation every run shares;
* :mod:`~mlwfcalc.training.transfer`: fine-tuning through the wavefunction on high-level energies,
  forces and dipoles (``mlwfcalc train --transfer``);
* :mod:`~mlwfcalc.training.energy_fit`: an energy head fitted on a frozen network
  (``mlwfcalc train-energy``);
* :mod:`~mlwfcalc.training.domain_fit`: a model's training domain and its calibrated uncertainty
  (``mlwfcalc fit-domain``, and at the end of ``train``);
* :mod:`~mlwfcalc.training.distributed`: DistributedDataParallel plumbing (``train --ddp N``, torchrun);
* :mod:`~mlwfcalc.training.evaluation`: a model's accuracy on label databases (``mlwfcalc evaluate``).
"""

from .trainer import TrainConfig, Trainer

__all__ = ["TrainConfig", "Trainer"]
