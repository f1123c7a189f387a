"""AVA Tray: a desktop voice assistant on the OpenAI Realtime API that never goes silent."""

__version__ = "0.1.0"
