"""PyInstaller runtime hook: let sounddevice find the PortAudio library bundled with the app.

sounddevice looks PortAudio up with `ctypes.util.find_library("portaudio")`, which on Linux searches only
the system (ldconfig), never the bundle. This makes that lookup answer with the bundled copy first, so a
machine without libportaudio2 still has sound; other names are left to the original function.
"""

import ctypes.util
import glob
import os
import sys

_PATTERNS = ("libportaudio.so*", "libportaudio*.dylib", "libportaudio*.dll", "portaudio*.dll")


def _bundled_portaudio() -> str | None:
    bundle = getattr(sys, "_MEIPASS", None)
    if not bundle:
        return None
    for folder in (bundle, os.path.join(bundle, "_sounddevice_data", "portaudio-binaries")):
        for pattern in _PATTERNS:
            found = sorted(glob.glob(os.path.join(folder, pattern)))
            if found:
                return found[0]
    return None


def _install() -> None:
    bundled = _bundled_portaudio()
    if bundled is None:
        return
    system_find_library = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        if name == "portaudio":
            return bundled
        return system_find_library(name)

    ctypes.util.find_library = find_library


_install()
