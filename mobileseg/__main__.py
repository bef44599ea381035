"""``python -m mobileseg COMMAND [flags]``: the same as the ``mobileseg`` console script (`mobileseg.cli`)."""

import sys

from mobileseg.cli import main

if __name__ == "__main__":
    sys.exit(main())
