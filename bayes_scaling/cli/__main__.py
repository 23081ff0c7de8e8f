"""``python -m bayes_scaling.cli``: the command line."""

import sys

from bayes_scaling.cli import main

sys.exit(main())
