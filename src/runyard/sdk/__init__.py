"""The runyard Python SDK: an httpx client of the native API, sync and async.

>>> from runyard.sdk import Client
>>> with Client.discover() as c:           # flags > RUNYARD_* > ./.runyard/credentials.json
...     print(c.exec("my-agent", "echo hi")["output"]["text"])

Methods return the wire documents as plain dicts. Every failure, from an
error envelope of the server to a refused connection, is raised as a
:class:`runyard.errors.RunyardError` (``NotFound``, ``Unauthorized``,
``RunFailed``, :class:`ConnectionFailed`, …).
"""

from runyard.errors import ClientFailure, ConnectionFailed, RequestTimedOut, UnexpectedResponse
from runyard.sdk.client import AsyncClient, Client
from runyard.sdk.config import Connection, Credentials, load_credentials, resolve_connection

__all__ = [
    "AsyncClient",
    "Client",
    "ClientFailure",
    "Connection",
    "ConnectionFailed",
    "Credentials",
    "RequestTimedOut",
    "UnexpectedResponse",
    "load_credentials",
    "resolve_connection",
]
