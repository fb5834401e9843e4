"""runyard: a self-hosted runtime for AI agents.

The package is layered as DESIGN.md describes: ``domain`` (pure rules),
``store`` (persistence), ``services`` (use cases), ``api`` (HTTP surfaces),
``worker`` (claim loop and execution), ``sandbox`` and ``harness`` (how a run
is isolated and what it runs), ``sdk`` and ``cli`` (clients).
"""

__version__ = "0.1.0"
