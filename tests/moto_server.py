"""moto server on loopback, inside the test process, shared by every test that needs an emulator."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ops.emulator import LOOPBACK


def reset_emulator(endpoint: str) -> None:
    """Reset every moto backend, so nothing created by one test survives into another."""
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    no_proxy.open(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).close()


@contextmanager
def loopback_moto(patch: pytest.MonkeyPatch) -> Iterator[str]:
    """A free loopback port, never reached through a proxy; reset and stopped on exit."""
    from moto.server import ThreadedMotoServer

    for name in ("NO_PROXY", "no_proxy"):  # in-process boto3 must never use a proxy for moto
        patch.setenv(name, f"{LOOPBACK},localhost")
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        yield endpoint
    finally:
        try:
            reset_emulator(endpoint)
        finally:
            server.stop()
