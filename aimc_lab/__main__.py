"""``python -m aimc_lab``: the same as the ``aimc-lab`` command."""

import sys

from aimc_lab.cli import main

sys.exit(main())
