"""The Google Drive feed: Drive changes → dirty folders under the source.

One module per concern: ``credentials`` (from the user's rclone setup),
``google`` (the API clients, the mount's root folder, Google's errors),
``names`` (Drive names as the mount shows them), ``items`` (the one item
record and path resolver), ``activity`` (the Drive Activity feed),
``feed`` (the poll, its cursor and its status), ``auth`` (``graylink drive
auth``, the consent for the Activity scope) and ``checks`` (doctor).
Like every trigger it only writes dirty marks; it never touches links.

googleapiclient and google.auth are imported only when a poll runs.

May import: ``system``, ``config``, ``store``, ``rclone``.
"""
