"""``python -m usagemeter``: the same as the ``usagemeter`` command."""

from __future__ import annotations

import sys

from usagemeter.cli import main

sys.exit(main())
