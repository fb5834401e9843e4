"""PostgreSQL backend: the distributed engine shared by many API servers and workers.

Connections come from a psycopg pool. Claims select queued candidates with
``FOR UPDATE SKIP LOCKED`` so concurrent workers never block on each other's
rows, then lock the candidates' agent rows (in id order, so claimers never
deadlock) to keep the per-agent concurrency limit exact.
Migrations take an advisory lock so several processes may start at once.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from runyard.errors import StoreError
from runyard.store.fragments import placeholders
from runyard.store.migrator import MigratingStore
from runyard.store.sql import Tx

log = logging.getLogger("runyard.store")

_MIGRATION_LOCK = 0x72756E79  # "runy"
_CHANNEL = "runyard_runs"
_LISTEN_READY_S = 10.0
_PLACEHOLDER = re.compile(r"\?")


class _PgTx:
    def __init__(self, cur: psycopg.Cursor[dict[str, Any]], cache: dict[str, str]) -> None:
        self._cur = cur
        self._cache = cache

    def _sql(self, sql: str) -> str:
        converted = self._cache.get(sql)
        if converted is None:
            converted = _PLACEHOLDER.sub("%s", sql)
            self._cache[sql] = converted
        return converted

    def q(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self._cur.execute(self._sql(sql), tuple(params))
        return list(self._cur.fetchall())

    def x(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cur.execute(self._sql(sql), tuple(params))
        return self._cur.rowcount


class PostgresStore(MigratingStore):
    """Store on a PostgreSQL database named by a ``postgresql://`` URL."""

    backend = "postgres"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, min_size: int = 1, max_size: int = 16) -> None:
        super().__init__()
        self._listener: threading.Thread | None = None
        self._listening = threading.Event()
        self._closing = threading.Event()
        self.url = url
        self._sql_cache: dict[str, str] = {}
        # prepare_threshold=None: no server-side prepared statements, so a
        # migration applied by a newer process (a rolling upgrade) cannot break
        # this one's cached plans, and transaction-pooling proxies work.
        self._pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": False, "prepare_threshold": None},
        )
        try:
            self._pool.open(wait=True, timeout=10.0)
        except Exception as exc:
            self._pool.close()
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Tx]:
        if not write:
            # Reads are single statements: autocommit spares BEGIN and COMMIT,
            # two round trips per read.
            with self._pool.connection() as conn:
                conn.autocommit = True
                try:
                    with conn.cursor(row_factory=dict_row) as cur:
                        yield _PgTx(cur, self._sql_cache)
                finally:
                    conn.autocommit = False
            return
        with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            yield _PgTx(cur, self._sql_cache)

    def _notify(self, tx: Tx, event: str, run_id: str) -> None:
        tx.q("SELECT pg_notify(?, ?)", [_CHANNEL, f"{event}:{run_id}"])

    def subscribe(self, callback: Callable[[str, str], None]) -> None:
        """Add a subscriber; returns once the LISTEN connection is up.

        Waiting means a commit made after ``subscribe`` returns is heard (a
        NOTIFY sent before LISTEN is lost). If the server cannot be reached the
        wait is bounded: delivery starts when the listener connects, and pollers
        stay correct meanwhile.
        """
        super().subscribe(callback)
        if self._listener is None:
            self._listener = threading.Thread(
                target=self._listen, name="runyard-pg-listen", daemon=True
            )
            self._listener.start()
        self._listening.wait(_LISTEN_READY_S)

    def _listen(self) -> None:
        """Relay NOTIFY messages to subscribers; reconnect after errors until closed."""
        while not self._closing.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {_CHANNEL}")
                    self._listening.set()
                    while not self._closing.is_set():
                        for note in conn.notifies(timeout=0.5):
                            event, _, run_id = note.payload.partition(":")
                            self._dispatch([(event, run_id)])
            except psycopg.Error:
                log.warning("lost the LISTEN connection; reconnecting", exc_info=True)
                self._listening.clear()
                self._closing.wait(1.0)

    def _lock_agents(self, tx: Tx, agent_ids: Sequence[str]) -> None:
        # ORDER BY puts the row locks after the sort: every claimer takes them in
        # id order, so two claimers with overlapping candidates cannot deadlock.
        marks = placeholders(agent_ids)
        tx.q(f"SELECT id FROM agents WHERE id IN ({marks}) ORDER BY id FOR UPDATE", agent_ids)

    def _lock_migrations(self, tx: Tx) -> None:
        tx.q("SELECT pg_advisory_xact_lock(?)", [_MIGRATION_LOCK])

    def _is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.errors.UniqueViolation)

    def close(self) -> None:
        self._closing.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
        self._pool.close()
