"""``python -m mlwfcalc.cli ...`` (and ``torchrun ... -m mlwfcalc.cli train ...``): the ``mlwfcalc`` command."""

import sys

from mlwfcalc.cli import main

sys.exit(main())
