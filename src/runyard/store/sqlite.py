"""SQLite backend: the embedded default of ``runyard up``.

One connection per thread, WAL journal, ``synchronous=FULL`` so that a
committed run survives power loss, and ``BEGIN IMMEDIATE`` for every write
so writers serialize up front instead of failing on lock upgrade. A claim is
therefore a plain select-then-conditional-update inside one immediate
transaction.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runyard.store.migrator import MigratingStore
from runyard.store.sql import Tx


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def q(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self._conn.execute(sql, tuple(params))
        return [dict(r) for r in cur.fetchall()]

    def x(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, tuple(params)).rowcount


class SqliteStore(MigratingStore):
    """Store on one SQLite file; safe for many threads of one or more processes."""

    backend = "sqlite"

    def __init__(self, path: Path, busy_timeout_ms: int = 30_000) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self._busy_timeout_ms / 1000,
            )
            try:
                conn.row_factory = sqlite3.Row
                conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
                self._enable_wal(conn)
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
            except BaseException:
                conn.close()
                raise
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL, retrying while another connection holds the lock.

        Changing the journal mode of a fresh file needs an exclusive lock and
        SQLite reports ``database is locked`` at once instead of calling the
        busy handler, so connections opened together (threads of one process,
        or ``up`` and ``worker`` starting at the same time) retry here.
        """
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Tx]:
        conn = self._conn()
        if not write:
            # Reads are single statements: SQLite runs each in its own implicit
            # transaction, so BEGIN/COMMIT would only cost two more calls.
            yield _SqliteTx(conn)
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield _SqliteTx(conn)
            conn.execute("COMMIT")
        except BaseException:
            # Also after a failed COMMIT: never leave this thread's connection
            # inside a transaction, or every later BEGIN on it would fail.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._take_pending()
            raise
        events = self._take_pending()
        if events:
            self._dispatch(events)

    def _is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()
