"""The composition root: the command line, the settings file and the key turned into one engine.

The console and the tray both start AVA through here, so a command-line override (`--audio-mode`,
`--voice-gate`, `--rollover`, `--session-limit`, `--demo`) means the same in both, and the key is looked up in
one place.
"""

from __future__ import annotations

import argparse
import logging

from ava_tray import keystore
from ava_tray.clock import Clock
from ava_tray.engine import AvaEngine, LaunchOptions
from ava_tray.history import ReconnectHistory
from ava_tray.realtime.providers import ProviderError, provider_for
from ava_tray.settings import Settings
from ava_tray.tools.hooks import SettingsFile

logger = logging.getLogger(__name__)


def launch_options(args: argparse.Namespace) -> LaunchOptions:
    """The command line's part of how AVA runs; applied on top of the settings, never saved."""
    return LaunchOptions(demo=bool(getattr(args, "demo", False)),
                         session_limit=getattr(args, "session_limit", None),
                         audio_mode=getattr(args, "audio_mode", None) or None,
                         rollover_enabled=getattr(args, "rollover", None),
                         voice_gate=getattr(args, "voice_gate", None))


def api_key_for(launch: LaunchOptions, settings: Settings) -> str | None:
    """The key to connect with (None for the demo): the provider's own (an Azure resource's key is kept
    apart); raises `keystore.KeyStoreError` with a sentence."""
    if launch.demo:
        return None
    try:
        provider = provider_for(settings.realtime_url, settings.provider)
    except ProviderError:
        provider = provider_for(settings.realtime_url, settings.provider, env={})
    return keystore.resolve_key(provider.value)


def build_engine(settings: Settings, api_key: str | None, launch: LaunchOptions, *,
                 history: ReconnectHistory | None = None, settings_file: SettingsFile | None = None,
                 clock: Clock | None = None) -> AvaEngine:
    """The one way AVA's core is put together for a front end."""
    return AvaEngine(settings, api_key, launch=launch, history=history, settings_file=settings_file, clock=clock)
