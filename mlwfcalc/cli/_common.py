"""What the verbs share: the parsers of comma-separated and count-or-fraction values, the flag groups
(``--device/--threads/--quiet``, ``--domain``, ``--compositions``) and the torch thread count.
"""

from __future__ import annotations

import argparse

from ..validation import InputError


def _numbers(text: str, kind, flag: str) -> list:
    """``"300,500"`` -> ``[300.0, 500.0]``; a clear error for anything else."""
    try:
        values = [kind(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise InputError(f"{flag} {text!r}: give a number or a comma-separated list such as 300,500,700") from None
    if not values:
        raise InputError(f"{flag} is empty")
    return values


def _number(text: str):
    return float(text) if "." in text else int(text)


def _add_runtime(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _add_domain(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--domain", choices=["refuse", "warn"], default="refuse",
                        help="a molecule outside the model's training domain: refuse it (default), or warn and go on")


def _add_compositions(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compositions", choices=["formulas", "elements"], default="formulas",
                        help="domain: answer only for the chemical formulas seen (per-molecule models, default), "
                             "or for any molecule of the elements and sizes seen (chemical-space models)")


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)
