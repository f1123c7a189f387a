"""Where tests put what a person should look at (screenshots, exports): $AVA_TEST_ARTIFACTS/<name>, else
artifacts/<name> in the repository (ignored by git). The folder is printed so a run's log says where."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def artifacts_dir(name: str) -> Path:
    """A fresh-enough folder for one test's artifacts (created; earlier files of the same names are replaced)."""
    base = Path(os.environ["AVA_TEST_ARTIFACTS"]) if os.environ.get("AVA_TEST_ARTIFACTS") else REPO / "artifacts"
    folder = base / name
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nartifacts: {folder}")
    return folder
