"""The long-running service (``reconcile --loop``): the loop, its job table, logging setup, and the watch on a database
that vanished under it.

May import every package but ``cli``.
"""
