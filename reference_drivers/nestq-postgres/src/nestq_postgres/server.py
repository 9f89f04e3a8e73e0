"""A private PostgreSQL cluster in a temp directory (``initdb`` + ``pg_ctl``), for tests and benchmarks.

It is what makes a storage restart testable without touching a shared server: :meth:`PostgresServer.restart`
stops the postmaster the hard way (``pg_ctl stop -m immediate``, like a crash) and starts it again on the same
port and data directory. Run as root, the server runs as the ``postgres`` system user (``initdb`` refuses root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PostgresServer", "find_bindir"]


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: ``NESTQ_PG_BINDIR``, ``pg_config --bindir``, or None."""
    candidates: list[str] = []
    if os.environ.get("NESTQ_PG_BINDIR"):
        candidates.append(os.environ["NESTQ_PG_BINDIR"])
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidates.append(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    candidates.extend(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))
    for found in candidates:
        path = Path(found)
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A throwaway cluster with password (scram) authentication for user ``postgres``; :attr:`dsn` reaches it."""

    def __init__(self, bindir: Path | None = None, *, fsync: bool = False) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl): install postgresql or set "
                               "NESTQ_PG_BINDIR")
        self.bindir = found
        self.fsync = fsync
        self.password = secrets.token_hex(8)
        self.port = 0
        self._dir: Path | None = None
        self._user = "postgres" if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        """``postgresql://postgres:<password>@127.0.0.1:<port>/postgres``."""
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres"

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        if self._dir is None:
            raise RuntimeError("the server is not started")
        return self._dir / "data"

    def _run(self, *args: str, timeout: float = 120) -> None:
        try:
            subprocess.run([str(self.bindir / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout,
                           check=True, user=self._user, cwd="/")
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"{args[0]} failed ({exc.returncode}): {exc.stderr.strip()[-2000:]}") from None

    def start(self) -> PostgresServer:
        """Initdb a new cluster in a temp directory and start it on a free port; return once it accepts logins."""
        self._dir = Path(tempfile.mkdtemp(prefix="nestq-pg-"))
        pwfile = self._dir / "pw"
        pwfile.write_text(self.password + "\n", encoding="utf-8")
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self._dir, entry.pw_uid, entry.pw_gid)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=scram-sha-256",
                  f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync", "--locale=C")
        self.port = _free_port()
        self._pg_ctl_start()
        return self

    def _pg_ctl_start(self) -> None:
        assert self._dir is not None
        # fsync=off unless asked (benchmarks): a test cluster; a restart kills processes, not the machine, so the
        # page cache keeps every committed write (WAL replay and crash recovery still run on every restart).
        options = (f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 -c max_connections=200 "
                   f"-c fsync={'on' if self.fsync else 'off'}")
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self._dir / "log"), "-o", options, "-w",
                  "-t", "60", "start")

    def restart(self) -> None:
        """Stop the postmaster immediately (no checkpoint, clients cut off) and start it on the same port."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        self._pg_ctl_start()

    def stop(self) -> None:
        """Stop the server and delete its directory."""
        if self._dir is None:
            return
        with contextlib.suppress(RuntimeError):  # already stopped: the directory goes anyway
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None
