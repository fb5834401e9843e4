"""The migration runner both backends share.

Migrations are plain SQL files, ``migrations/<backend>/NNNN_name.sql``,
applied in name order inside one transaction and recorded in
``schema_migrations``. The backend hook ``_lock_migrations`` keeps two
processes from migrating at once (PostgreSQL takes an advisory lock; SQLite
already serializes writers), so ``migrate()`` is idempotent and safe to run
from every process at start-up.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources

from runyard.store.sql import SqlStore, Tx
from runyard.types import now_millis


def iter_statements(script: str) -> Iterator[str]:
    """Split a migration file on ``;`` at line ends (no procedural SQL in migrations)."""
    for stmt in script.split(";\n"):
        if stmt.strip():
            yield stmt.strip().rstrip(";")


class MigratingStore(SqlStore):
    """Adds the migration runner: ``migrations/<backend>/NNNN_name.sql`` in order."""

    def _lock_migrations(self, tx: Tx) -> None:
        """Keep two processes from migrating at once (no-op where writers serialize)."""

    def migrate(self) -> None:
        folder = resources.files("runyard.store.migrations") / self.backend
        scripts = sorted(
            (p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name
        )
        with self._tx(write=True) as tx:
            self._lock_migrations(tx)
            tx.x(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)"
            )
            done = {r["version"] for r in tx.q("SELECT version FROM schema_migrations")}
            for script in scripts:
                version = script.name.removesuffix(".sql")
                if version in done:
                    continue
                for stmt in iter_statements(script.read_text()):
                    tx.x(stmt)
                tx.x(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    [version, now_millis()],
                )
