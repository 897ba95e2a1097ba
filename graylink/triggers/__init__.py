"""Triggers: the mtime/fingerprint-gated walk of the source and the mount's health check (with remounts). Like every
trigger (the Drive feed in ``drive``, the webhooks in ``web``) they only write dirty marks; they never touch links.

May import: ``system``, ``config``, ``store``, ``rclone``, ``source``, ``links`` (ownership: whose source it is).
"""
