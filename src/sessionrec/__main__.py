"""``python -m sessionrec`` (also what ``torchrun -m sessionrec`` runs)."""

import sys

from sessionrec.cli import main

sys.exit(main())
