"""`python -m consumer.cli ...`: the same as the `fraudstream` console script."""

import sys

from consumer.cli import main

sys.exit(main())
