"""Worker credentials: NATS users in a generated authorization file, passwords bcrypt-hashed.

`ima fleet add-worker NAME` makes a password, prints it once, and keeps only its bcrypt
hash, which is what nats-server itself checks: the operator's server includes the
generated file (`include fleet/nats-auth.conf`) and reloads it (`nats-server --signal
reload`, or `--reload-pid`). Each worker user may publish only its own heartbeats and
answers to jobs it received (a stream of them, for generation), and subscribe only to
its own job subjects, the shared queues and the micro service subjects; so a worker
cannot pose as another, and a revoked one is disconnected by the server at the reload.
`ima serve --fleet` connects as the user `ima-serve`, whose password this file keeps
beside it (mode 0600).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import bcrypt

from ima.config import private_file
from ima.errors import BadInput
from ima.fleet import protocol

SERVE_USER = "ima-serve"
MAX_RESPONSES = 5000  # a streamed answer is many replies to one job
_SCHEMA = """
CREATE TABLE IF NOT EXISTS workers (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    created REAL NOT NULL,
    revoked REAL
);
"""


@dataclass(frozen=True, slots=True)
class WorkerCredential:
    name: str
    created: float
    revoked: float | None


class Credentials:
    """The fleet's users, in `DATA_DIR/fleet/`: a SQLite file and the generated
    `nats-auth.conf` (rewritten on every change)."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "fleet"
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.db = private_file(self.dir / "workers.sqlite3")
        self.auth_file = self.dir / "nats-auth.conf"
        self.serve_secret = self.dir / "serve.secret"
        with self._conn() as conn:
            conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db, timeout=10, isolation_level=None)

    def add(self, name: str) -> str:
        """A new worker user; returns its password, the only copy. Raises ValueError for a
        bad name or one in use (a revoked name may be given again)."""
        protocol.check_name(name)
        if name == SERVE_USER:
            raise BadInput(f"{SERVE_USER} is the name ima serve connects as")
        password = secrets.token_urlsafe(24)
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(10)).decode()
        with self._conn() as conn:
            row = conn.execute("SELECT revoked FROM workers WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] is None:
                raise BadInput(f"a worker named {name!r} exists; remove it first")
            conn.execute(
                "INSERT OR REPLACE INTO workers (name, hash, created, revoked) "
                "VALUES (?, ?, ?, NULL)", (name, hashed, time.time()),
            )  # fmt: skip
        self.write_auth()
        return password

    def remove(self, name: str) -> bool:
        with self._conn() as conn:
            changed = conn.execute(
                "UPDATE workers SET revoked = ? WHERE name = ? AND revoked IS NULL",
                (time.time(), name),
            ).rowcount
        self.write_auth()
        return changed == 1

    def list(self) -> list[WorkerCredential]:
        with self._conn() as conn:
            rows = conn.execute("SELECT name, created, revoked FROM workers ORDER BY name")
            return [WorkerCredential(*row) for row in rows.fetchall()]

    def serve_password(self) -> str:
        """`ima serve`'s own password, made on first use."""
        if not self.serve_secret.exists():
            private_file(self.serve_secret).write_text(secrets.token_urlsafe(24))
        return self.serve_secret.read_text().strip()

    def write_auth(self) -> Path:
        """Write the authorization block nats-server includes: live workers and ima-serve."""
        serve_hash = bcrypt.hashpw(self.serve_password().encode(), bcrypt.gensalt(10)).decode()
        with self._conn() as conn:
            rows = conn.execute("SELECT name, hash FROM workers WHERE revoked IS NULL").fetchall()
        users = [f"    {{user: {json.dumps(SERVE_USER)}, password: {json.dumps(serve_hash)}}}"]
        for name, hashed in rows:
            subscribe = [protocol.job_subject(name, ">"), protocol.CANCEL, "$SRV.>", "_INBOX.>"]
            users.append(
                f"    {{user: {json.dumps(name)}, password: {json.dumps(hashed)}, permissions: {{"
                f"publish: {{allow: {json.dumps([protocol.heartbeat_subject(name)])}}}, "
                f"subscribe: {{allow: {json.dumps(subscribe)}}}, "
                f"allow_responses: {{max: {MAX_RESPONSES}, expires: \"10m\"}}}}}}"
            )
        text = "# written by ima fleet: do not edit\nauthorization {\n  users = [\n"
        text += "\n".join(users) + "\n  ]\n}\n"
        partial = private_file(self.auth_file.with_suffix(".tmp"))
        partial.write_text(text)
        os.replace(partial, self.auth_file)
        return self.auth_file

    def serve_url(self, url: str) -> str:
        """`url` with ima-serve's credentials, unless it carries some or no worker exists
        (then the server is taken to run without auth, as on a developer's machine)."""
        if "@" in urlsplit(url.split(",")[0]).netloc or not self.list():
            return url
        scheme, rest = url.split("://", 1)
        return f"{scheme}://{SERVE_USER}:{self.serve_password()}@{rest}"


def reload_server(pid_file: Path) -> None:
    """Ask the nats-server whose pid is in `pid_file` to reload its configuration."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        raise BadInput(f"cannot reload nats-server from {pid_file}: {exc}") from None
