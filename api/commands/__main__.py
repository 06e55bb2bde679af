"""``python -m api.commands ...`` is ``oms ...`` (the test suite and load generators start workers this way)."""

import sys

from api.commands.main import main

sys.exit(main())
