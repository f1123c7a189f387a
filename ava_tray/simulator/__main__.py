"""`python -m ava_tray.simulator`: run the Realtime simulator in the foreground until Ctrl+C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from ava_tray.simulator.server import RealtimeSimulator

logger = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ava_tray.simulator",
                                     description="A loopback stand-in for the OpenAI Realtime API (GA events).")
    parser.add_argument("--port", type=int, default=8765, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--session-limit", type=float, default=3600.0, metavar="SECONDS",
                        help="close every session after this long, like OpenAI's 60-minute limit")
    parser.add_argument("--api-key-env", metavar="VAR",
                        help="require `Authorization: Bearer <key>` with the key read from this environment "
                             "variable (a key is never taken on the command line)")
    parser.add_argument("--expiry-error-first", action="store_true",
                        help="send an error with code session_expired before the 1001 close")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


async def serve_until_stopped(args: argparse.Namespace, api_key: str | None) -> None:
    """Run the simulator, print its URL, and stop cleanly on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: Ctrl+C still interrupts
            loop.add_signal_handler(signum, stop.set)
    simulator = RealtimeSimulator(port=args.port, session_limit=args.session_limit, api_key=api_key,
                                  expiry_error_first=args.expiry_error_first)
    await simulator.start()
    try:
        print(f"Realtime simulator listening on {simulator.url}", flush=True)
        await stop.wait()
    finally:
        await simulator.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            print(f"The environment variable {args.api_key_env} is not set or empty.", file=sys.stderr)
            return 2
    try:
        asyncio.run(serve_until_stopped(args, api_key))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"Cannot listen on port {args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
