"""Per-agent environments: where an agent's persistent home lives and how it is made ready."""
