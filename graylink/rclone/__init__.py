"""What graylink knows of rclone itself: its config file, its remote paths, its name encoding.

Each module follows one part of rclone's source (named in its docstring) and
is checked against the real binary in the tests. rclone owns rclone.conf:
nothing here ever writes it.

May import: ``system``, ``config``, ``store``.
"""
