"""Persistence behind one :class:`~runyard.store.base.Store` protocol.

SQLite (embedded default) and PostgreSQL (distributed) share the SQL in
:mod:`runyard.store.sql`; each backend module supplies only connections,
placeholders and its claim locking. :func:`open_store` picks one from a URL.
"""

from __future__ import annotations

from pathlib import Path

from runyard.store.base import Store


def open_store(database_url: str | None, sqlite_path: Path) -> Store:
    """Open (not migrate) the store a URL names; SQLite at ``sqlite_path`` when None."""
    if database_url and database_url.startswith(("postgresql://", "postgres://")):
        from runyard.store.postgres import PostgresStore

        return PostgresStore(database_url)
    from runyard.store.sqlite import SqliteStore

    if database_url and database_url.startswith("sqlite:///"):
        return SqliteStore(Path(database_url.removeprefix("sqlite:///")))
    return SqliteStore(sqlite_path)


__all__ = ["Store", "open_store"]
