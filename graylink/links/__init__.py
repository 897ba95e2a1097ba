"""The link tree: the pure planner (create / repair / prune / conflict), the reader of what is on disk, the applier
(the only code that writes links), the recording of applied actions, and ownership (whose library a tree is).

May import: ``system``, ``config``, ``store``, ``source``.
"""
