"""What graylink tells people and scripts: ``status`` (JSON and text), ``doctor``, the snapshot page and its templates.

May import every package below it (up to ``reconcile`` and ``alerts``); never ``web``, ``service`` or ``cli``.
"""
