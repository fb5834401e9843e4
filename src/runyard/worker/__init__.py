"""The worker: claims runs from the store, executes them in sandboxes, keeps leases.

``loop`` claims and schedules, ``executor`` runs one claimed run from start to
its final write, ``reaper`` rescues runs whose worker stopped renewing.
"""
