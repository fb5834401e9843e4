"""One router module per API surface; each is thin and calls services only."""
