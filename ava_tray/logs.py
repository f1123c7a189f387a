"""Logging for every front end: a rotating file in the user log folder, stderr for warnings; key redacted."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys

from ava_tray import paths
from ava_tray.redact import RedactingFilter

logger = logging.getLogger(__name__)

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(stderr_level: str | None = None, *, to_file: bool = True) -> None:
    """Send INFO and up to `ava-tray.log` (unless not `to_file`), and `stderr_level` (default WARNING) and up
    to stderr."""
    root = logging.getLogger()
    redactor = RedactingFilter()
    level = (stderr_level or os.environ.get("AVA_LOG_LEVEL") or "WARNING").upper()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(getattr(logging, level, logging.WARNING))
    root.setLevel(min(logging.INFO, console.level))
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    console.addFilter(redactor)
    root.addHandler(console)
    for noisy in ("websockets", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not to_file:
        return
    try:
        folder = paths.log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        file = logging.handlers.RotatingFileHandler(folder / "ava-tray.log", maxBytes=1_000_000, backupCount=3,
                                                    encoding="utf-8")
    except OSError as exc:
        logger.warning("no log file (%s); logging to stderr only", exc)
    else:
        file.setFormatter(logging.Formatter(FORMAT))
        file.addFilter(redactor)
        root.addHandler(file)
