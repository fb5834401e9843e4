"""The ``runyard`` command: server entry points and a client over the HTTP API.

``server`` holds the commands that touch the store (up, serve, worker,
migrate, admin); ``client`` holds everything else, which goes through the
SDK like any other client.
"""
