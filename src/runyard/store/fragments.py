"""SQL fragments every store module builds queries from, defined once.

``?`` placeholders (the PostgreSQL backend rewrites them), the list of
active run states for ``status IN (…)``, and an ``INSERT`` built from a
column mapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runyard.domain.states import ACTIVE

ACTIVE_SQL = ", ".join(f"'{s.value}'" for s in sorted(ACTIVE))


def placeholders(values: Sequence[Any]) -> str:
    """``?, ?, ?`` for ``values``."""
    return ", ".join("?" for _ in values)


def insert_sql(table: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """An ``INSERT`` of ``params`` (column -> value) into ``table`` and its values."""
    cols = list(params)
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({placeholders(cols)})",
        [params[c] for c in cols],
    )
