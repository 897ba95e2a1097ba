"""The SQLite store: the index, links, dirty marks, queues and metadata; its schema and migrations, failures, the lock,
backup/restore, scratch and read-only opening, run history and open problems, and the scopes marks cover.

May import: ``system``, ``config``.
"""
