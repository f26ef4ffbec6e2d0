"""``python3 -m loads_client TEST``: run TEST for loads (see ``loads_client.runner``)."""

import sys

from .runner import main

if __name__ == "__main__":
    sys.exit(main())
