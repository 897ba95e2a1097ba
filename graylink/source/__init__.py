"""The source side: listing folders (on worker threads, under deadlines), the scanner that refreshes the index, the
guard that notices a mount replaced mid-walk, and the rules of which files are videos.

May import: ``system``, ``config``, ``store``.
"""
