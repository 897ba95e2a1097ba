"""One reconcile run: preflight of the paths, the cycle (triggers of this run, index refresh, planning, the prune veto,
applying), its outcome values, and the hand-over of its changes to the media-server queue.

May import every package below it: ``system``, ``config``, ``store``, ``rclone``, ``source``, ``links``, ``drive``,
``triggers``, ``notify``.
"""
