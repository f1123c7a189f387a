"""`ava-tray`: the tray app by default; `--console` for the headless session log; key management."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys

from ava_tray import __version__, logs

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ava-tray", description="AVA: a voice assistant in the system tray.")
    parser.add_argument("--console", action="store_true", help="run headless and print the session log")
    parser.add_argument("--demo", action="store_true",
                        help="talk to the built-in local Realtime simulator (no API key needed)")
    parser.add_argument("--session-limit", type=float, metavar="SECONDS",
                        help="with --demo: end each simulated session after this many seconds")
    parser.add_argument("--rollover", action=argparse.BooleanOptionalAction, default=None,
                        help="renew sessions seamlessly before their limit (default: on, see Settings)")
    parser.add_argument("--audio-mode", choices=["speakers", "headphones", "automatic"],
                        help="speakers: echo cancellation; headphones: none; automatic: by the output device's "
                             "name (default: as in Settings)")
    parser.add_argument("--voice-gate", action=argparse.BooleanOptionalAction, default=None,
                        help="send the microphone only while someone speaks (default: on, see Settings); "
                             "--no-voice-gate streams it continuously")
    parser.add_argument("--set-key", nargs="?", const="openai", choices=["openai", "azure"],
                        help="read an API key from standard input into the OS keyring (azure: an Azure OpenAI "
                             "resource's key, kept apart)")
    parser.add_argument("--forget-key", nargs="?", const="openai", choices=["openai", "azure"],
                        help="remove the API key (or the Azure one) from the OS keyring")
    parser.add_argument("--self-test", action="store_true", help="check Qt, keyring, audio and one demo session")
    parser.add_argument("--list-devices", nargs="?", const="text", choices=["text", "json"],
                        help="print the microphones and speakers AVA can use (the names Settings takes)")
    parser.add_argument("--usage", nargs="?", const="text", choices=["text", "json"],
                        help="print what AVA has cost, per day and model (tokens by kind, USD); json for scripts")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="stderr log level")
    parser.add_argument("--version", action="version", version=f"ava-tray {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments == ["--mcp-probe-server"]:  # the self-test's MCP server, started by AVA itself (frozen too)
        from ava_tray.tools.mcp.probe import serve

        serve()
        return 0
    args = build_parser().parse_args(argv)
    if args.session_limit is not None and args.session_limit <= 0:
        print("--session-limit must be a positive number of seconds.", file=sys.stderr)
        return 2
    # a listing (also AVA's own device helper) and a usage report write no log file
    logs.configure(args.log_level, to_file=not (args.list_devices or args.usage))
    try:
        if args.set_key:
            return set_key(args.set_key)
        if args.forget_key:
            return forget_key(args.forget_key)
        if args.list_devices:
            return print_devices(args.list_devices)
        if args.usage:
            return print_usage(args.usage)
        if args.self_test:
            from ava_tray.selftest import run_self_test

            return run_self_test()
        if args.console:
            return run_console(args)
        from ava_tray.ui.app import run_tray

        return run_tray(args)
    except KeyboardInterrupt:
        return 0


def set_key(provider: str) -> int:
    from ava_tray import keystore

    what = "Azure OpenAI API key" if provider == "azure" else "OpenAI API key"
    key = getpass.getpass(f"{what} (input hidden): ") if sys.stdin.isatty() else sys.stdin.readline()
    try:
        keystore.save_key(key, provider)
    except keystore.KeyStoreError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"The API key is saved in {keystore.describe_location()}.")
    return 0


def forget_key(provider: str) -> int:
    from ava_tray import keystore

    try:
        removed = keystore.forget_key(provider)
    except keystore.KeyStoreError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print("The API key was removed from the OS keyring." if removed else "No API key was stored.")
    return 0


def print_devices(form: str) -> int:
    """`--list-devices`: the device names, for people (text) or for AVA's own Settings (json)."""
    import json

    from ava_tray.audio.devices import list_devices_here

    inputs, outputs = list_devices_here()
    if form == "json":
        print(json.dumps({"inputs": inputs, "outputs": outputs}))
        return 0
    for title, names in (("Microphones", inputs), ("Speakers", outputs)):
        print(f"{title}:")
        print("\n".join(f"  {name}" for name in names) if names else "  (none found)")
    return 0


def print_usage(form: str) -> int:
    """`--usage`: the spend ledger per day and model; `json` prints a list of objects for scripts."""
    import json

    from ava_tray import paths
    from ava_tray.ledger import LedgerUnavailable, SpendLedger
    from ava_tray.pricing import PRICES_AS_OF

    path = paths.data_dir() / "spend.sqlite3"
    if not path.exists():
        totals = []
    else:
        try:
            ledger = SpendLedger(path)
        except LedgerUnavailable as exc:
            print(str(exc), file=sys.stderr)
            return 1
        totals = ledger.totals_by_day()
        ledger.close()
    if form == "json":
        print(json.dumps([{"date": t.day, "model": t.model, "input_tokens": t.usage.input_tokens,
                           "output_tokens": t.usage.output_tokens, "cost_usd": round(t.cost_usd, 6),
                           "input_text_tokens": t.usage.text_in, "input_audio_tokens": t.usage.audio_in,
                           "cached_text_tokens": t.usage.text_cached, "cached_audio_tokens": t.usage.audio_cached,
                           "output_text_tokens": t.usage.text_out, "output_audio_tokens": t.usage.audio_out,
                           "transcription_seconds": round(t.usage.transcription_seconds, 3)} for t in totals]))
        return 0
    if not totals:
        print("No usage recorded yet.")
        return 0
    header = ("date", "model", "text in", "cached", "audio in", "cached", "text out", "audio out", "USD")
    rows = [(t.day, t.model, t.usage.text_in, t.usage.text_cached, t.usage.audio_in, t.usage.audio_cached,
             t.usage.text_out, t.usage.audio_out, f"{t.cost_usd:.2f}") for t in totals]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) if i < 2 else str(cell).rjust(w)
                        for i, (cell, w) in enumerate(zip(row, widths, strict=True))))
    print(f"Total: ${sum(t.cost_usd for t in totals):.2f} (an estimate at the prices of {PRICES_AS_OF}; "
          "your provider's bill is authoritative)")
    return 0


def run_console(args: argparse.Namespace) -> int:
    from ava_tray import keystore
    from ava_tray.bootstrap import api_key_for, build_engine, launch_options
    from ava_tray.console import run_console as run
    from ava_tray.settings_store import SettingsStore

    store = SettingsStore()
    settings = store.load()
    if store.warning:
        print(store.warning, file=sys.stderr)
    launch = launch_options(args)
    try:
        api_key = api_key_for(launch, settings)
    except keystore.KeyStoreError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    engine = build_engine(settings, api_key, launch, settings_file=store)
    if engine.history.warning:
        print(engine.history.warning, file=sys.stderr)
    return asyncio.run(run(engine))


if __name__ == "__main__":
    sys.exit(main())
