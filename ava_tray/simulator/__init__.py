"""A loopback Realtime server speaking the GA subset AVA uses: demo mode and every test run against it.

`model` is the socket-free session (client events in, server events and close decisions out), `faults` the
failures it can stage, `connection` and `server` the thin WebSocket layer around them.
"""

from ava_tray.simulator.faults import Fault
from ava_tray.simulator.model import SimulatedSession
from ava_tray.simulator.server import RealtimeSimulator
from ava_tray.simulator.server_events import expiry_reason
from ava_tray.simulator.voice import synthetic_voice

__all__ = ["Fault", "RealtimeSimulator", "SimulatedSession", "expiry_reason", "synthetic_voice"]
