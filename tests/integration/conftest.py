"""Fixtures for the crash tests: a PostgreSQL database per module and a process cluster.

The store contract suite uses the shared ``store`` fixture of
``tests/conftest.py``; the crash tests need a database that separately
started ``runyard serve`` and ``runyard worker`` processes can share, and a
guarantee that every process a test started is stopped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from runyard.store.postgres import PostgresStore
from tests.conftest import PG_ADMIN_URL, TABLES
from tests.integration.cluster import Cluster


@pytest.fixture(scope="module")
def cluster_db() -> Iterator[str]:
    """A migrated PostgreSQL database for one test module, dropped after it."""
    dbname = f"runyard_crash_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for these tests and is unreachable: {exc}")
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    url = f"{base}/{dbname}"
    store = PostgresStore(url)
    store.migrate()
    store.close()
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@pytest.fixture
def cluster(cluster_db: str, tmp_path: Path) -> Iterator[Cluster]:
    """An empty database and a data directory; the test starts the processes it needs."""
    with psycopg.connect(cluster_db, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    made = Cluster(db_url=cluster_db, data_dir=tmp_path / "data")
    made.data_dir.mkdir(parents=True)
    try:
        yield made
    finally:
        made.stop()
