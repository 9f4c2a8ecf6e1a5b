"""mlwfcalc: machine-learned Kohn-Sham Hamiltonians from the command line (energies, orbitals, SCF guesses, training).

Bad input ends with one line ``mlwfcalc <command>: error: ...`` and exit status 2; a warning is one line
``mlwfcalc <command>: warning: ...``.

One module per group of verbs, each verb's parser (``add_VERB_parser``) beside the function that runs it
(``run_VERB``): :mod:`~mlwfcalc.cli.data` (molecules, sample, select, label, pack-labels, unpack-labels),
:mod:`~mlwfcalc.cli.training` (train and train --transfer, train-energy, fit-domain) and
:mod:`~mlwfcalc.cli.use` (evaluate, predict, scf, models); :mod:`~mlwfcalc.cli._common` holds what they
share. ``python -m mlwfcalc.cli`` (torchrun's ``-m mlwfcalc.cli train``) is the same command.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from ..validation import InputError
from . import data, training, use

#: The verbs in the order ``mlwfcalc --help`` lists them.
VERBS = (data.add_sample_parser, data.add_molecules_parser, data.add_select_parser, data.add_label_parser,
         data.add_pack_labels_parser, data.add_unpack_labels_parser, training.add_train_parser,
         training.add_fit_domain_parser, training.add_train_energy_parser, use.add_evaluate_parser,
         use.add_predict_parser, use.add_scf_parser, use.add_models_parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlwfcalc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add_parser in VERBS:
        add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    formatwarning = warnings.formatwarning  # one line each, without the source line of the library code
    warnings.formatwarning = lambda message, *_, **__: f"mlwfcalc {args.command}: warning: {message}\n"
    try:
        args.func(args)
    except InputError as err:
        print(f"mlwfcalc {args.command}: error: {err}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = formatwarning
    return 0
