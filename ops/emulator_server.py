"""The emulator process: moto server on loopback with the workarounds of ops/emulator.py applied.

    python -m ops.emulator_server --port 5000                  # until Ctrl-C or SIGTERM
    python -m ops.emulator_server --port 0 --ready-file F      # any free port; endpoint written to F

`python -m ops local-up` starts it in the background. The workarounds are monkeypatches, so they
only take effect inside the process that runs moto: that is why this starts the server itself
instead of using the `moto_server` command. It only ever listens on a loopback address: moto
accepts any credentials, so it must not be reachable from other machines.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from ops.emulator import LOOPBACK, PermanentPatch, work_around_emulator_gaps

EXIT_USAGE = 2


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _write_atomically(path: Path, text: str) -> None:
    """Readers poll for this file, so it must never be seen half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def serve(host: str, port: int, ready_file: Path | None, stop: threading.Event) -> None:
    """Start moto with the workarounds, announce the endpoint, and serve until `stop` is set."""
    from moto.server import ThreadedMotoServer

    work_around_emulator_gaps(PermanentPatch())
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    endpoint = f"http://{bound_host}:{bound_port}"
    if ready_file is not None:
        _write_atomically(ready_file, endpoint + "\n")
    print(f"emulator ready: {endpoint} (pid {os.getpid()})", flush=True)
    try:
        while not stop.wait(0.5):  # a timeout keeps the main thread responsive to signals everywhere
            pass
    finally:
        server.stop()
    print("emulator stopped", flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Run moto server on loopback with this project's workarounds.")
    parser.add_argument("--host", default=LOOPBACK, help="a loopback address (default %(default)s)")
    parser.add_argument("--port", type=int, default=5000, help="0 picks a free port (default %(default)s)")
    parser.add_argument("--ready-file", type=Path, default=None,
                        help="write the endpoint URL here once the server accepts requests")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not is_loopback(args.host):
        print(f"error: --host {args.host} is not a loopback address: the emulator accepts any credentials, "
              "so it must not be reachable from other machines", file=sys.stderr)
        return EXIT_USAGE
    if not 0 <= args.port <= 65535:
        print(f"error: --port {args.port} is not a TCP port (0-65535)", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        serve(args.host, args.port, args.ready_file, stop)
    except OSError as error:
        print(f"error: cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
