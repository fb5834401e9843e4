"""Domain rules of runyard: entities, the run state machine, policies.

Nothing in this package does I/O; it is imported by services, the store and
the worker alike so that every rule is written exactly once.
"""
