"""A throw-away PostgreSQL server on loopback, for tests that must run SQL against the real thing.

The server binaries come from the project's setup (`make test-deps`, Debian's `postgresql`
package). Without them the tests skip, or fail under `INFRA_REQUIRE_TOOLS=1` (CI). PostgreSQL
refuses to run as root; as root the server runs as the unprivileged `postgres` user the package
creates, in a fresh folder that user owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.terraform_tools import unavailable

LOOPBACK = "127.0.0.1"
SUPERUSER = "test_superuser"  # the cluster's bootstrap superuser: stands in for nobody in Aurora
SERVER_USER = "postgres"  # created by Debian's postgresql package
START_SECONDS = 60
HINT = "install the PostgreSQL server: make test-deps (Debian package postgresql)"


def server_bindir() -> Path | None:
    """The newest installed server's bin folder (Debian keeps it off PATH), else initdb on PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(path.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class PostgresServer:
    port: int
    log: Path

    def environ(self, user: str, database: str) -> dict[str, str]:
        """libpq settings for a plain loopback connection as `user` (trust authentication)."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        return {**inherited, "PGHOST": LOOPBACK, "PGPORT": str(self.port), "PGUSER": user,
                "PGDATABASE": database, "PGSSLMODE": "disable", "PGCONNECT_TIMEOUT": "10"}

    def psql(self, sql: str, *, user: str = SUPERUSER, database: str = "postgres",
             check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `sql` with psql: unaligned, tuples only, stop on the first error."""
        return run_psql(["psql", "--no-psqlrc", "--set=ON_ERROR_STOP=1", "-At", f"--command={sql}"],
                        self.environ(user, database), check=check)


def run_psql(command: Sequence[str], env: Mapping[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    client = shutil.which(command[0])
    if client is None:
        unavailable(f"{command[0]} is not installed ({HINT})")
    result = subprocess.run([client, *command[1:]], env=dict(env), capture_output=True, text=True, timeout=60,
                            check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"psql failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(_as_server_user(command), capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


@contextlib.contextmanager
def loopback_postgres(settings: Mapping[str, str] = ()) -> Iterator[PostgresServer]:
    """initdb in a fresh folder, start on a free loopback port (no Unix socket elsewhere), stop and remove."""
    bindir = server_bindir()
    if bindir is None:
        unavailable(f"no PostgreSQL server binaries found ({HINT})")
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(SERVER_USER)
        except KeyError:
            unavailable(f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as ({HINT})")
    folder = Path(tempfile.mkdtemp(prefix="infra-postgres-"))
    if os.geteuid() == 0:
        os.chown(folder, account.pw_uid, account.pw_gid)
    data, log, port = folder / "data", folder / "server.log", _free_port()
    options = {"listen_addresses": LOOPBACK, "port": str(port), "unix_socket_directories": str(folder),
               "fsync": "off", **dict(settings)}
    started = False
    try:
        _run([str(bindir / "initdb"), "--pgdata", str(data), "--username", SUPERUSER, "--auth", "trust",
              "--encoding", "UTF8", "--no-sync"], "initdb")
        _run([str(bindir / "pg_ctl"), "start", "--pgdata", str(data), "--log", str(log), "--wait",
              "--timeout", str(START_SECONDS),
              "-o", " ".join(f"-c {name}={value}" for name, value in options.items())], "pg_ctl start")
        started = True
        yield PostgresServer(port=port, log=log)
    finally:
        if started:
            _run([str(bindir / "pg_ctl"), "stop", "--pgdata", str(data), "--mode", "immediate", "--wait"],
                 "pg_ctl stop")
        shutil.rmtree(folder, ignore_errors=True)
