"""A loopback Realtime server speaking the GA subset AVA uses: demo mode and every test run against it."""

from ava_tray.simulator.connection import SimulatedSession, expiry_reason
from ava_tray.simulator.faults import Fault
from ava_tray.simulator.server import RealtimeSimulator
from ava_tray.simulator.voice import synthetic_voice

__all__ = ["Fault", "RealtimeSimulator", "SimulatedSession", "expiry_reason", "synthetic_voice"]
