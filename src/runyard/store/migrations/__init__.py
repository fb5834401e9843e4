"""Versioned SQL migrations, one folder per backend, applied in file-name order."""
