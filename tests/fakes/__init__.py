"""Test doubles that speak real protocols over real sockets (no network needed).

``upstream`` is the scripted fake model provider (start here: its docstring
documents the scripting API); ``script`` holds the reply values it serves and
``wire`` the three providers' wire formats.
"""
