"""``python -m ringrl``: the CLI, so that ``torchrun --nproc_per_node N -m ringrl rl ...`` works."""

import sys

from ringrl.cli import main

sys.exit(main())
