"""Use cases over the store: one module per aggregate, no HTTP types.

Routers of every API surface call these; the CLI's admin commands call them
directly. :class:`~runyard.services.container.Services` wires them together
in an entry point.
"""
