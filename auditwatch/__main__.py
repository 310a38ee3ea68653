"""`python -m auditwatch ...`: the `auditwatch` command, for an environment without its console script."""

import sys

from auditwatch.cli import main

sys.exit(main())
