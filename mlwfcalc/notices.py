"""Warnings a user reads: short, once per process, and shown at the user's own line.

:func:`notice` warns once per ``key`` in a process (a model's preliminary mark, the model ``"auto"`` chose,
the PySCF guess used where no model covers a state), attributed to the first calling frame outside
mlwfcalc (and ASE, PySCF around it), so Python prints the user's file, line and source, never an internal one. It leaves
``warnings.formatwarning`` and the user's filters alone: ``warnings.simplefilter("ignore", UserWarning)``
silences it as usual. The command line prints each as one ``mlwfcalc VERB: warning: ...`` line
(:func:`mlwfcalc.cli.main`).
"""

from __future__ import annotations

import os
import sys
import warnings

#: Packages whose frames are not the user's: mlwfcalc and the libraries that call into it (ASE's
#: ``get_potential_energy`` calls the calculator, PySCF's ``kernel`` the warm start).
_LIBRARIES = ("mlwfcalc", "ase", "pyscf", "torch", "numpy", "scipy", "importlib")
_said: set[str] = set()


def _user_frame():
    """The innermost frame outside mlwfcalc and the libraries around it (the caller's script or notebook)."""
    frame = sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).split(".")[0] in _LIBRARIES:
        frame = frame.f_back
    return frame


def notice(key: str, message: str, category: type[Warning] = UserWarning) -> bool:
    """Warn ``message`` the first time ``key`` is noticed in this process; returns whether it warned."""
    if key in _said:
        return False
    _said.add(key)
    frame = _user_frame()
    if frame is None:
        warnings.warn(message, category, stacklevel=2)
    else:
        # a module or script file: its source line is shown (not for stdin or -c, whose loader has no source)
        scripted = os.path.isfile(str(frame.f_globals.get("__file__", "")))
        warnings.warn_explicit(message, category, frame.f_code.co_filename, frame.f_lineno,
                               module=frame.f_globals.get("__name__", "__main__"),
                               module_globals=frame.f_globals if scripted else None)
    return True


def forget() -> None:
    """Forget what was said (tests that check a notice appears)."""
    _said.clear()
