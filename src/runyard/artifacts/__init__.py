"""Artifacts: files a run writes under ``outputs/``, kept after the run.

``collect`` finds them in the agent's home after the run, ``blobs`` stores
their contents by hash, ``links`` signs the expiring download URLs.
"""
