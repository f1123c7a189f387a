"""The frozen app's entry point: the same `main()` as `python -m ava_tray`."""

import sys

from ava_tray.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
