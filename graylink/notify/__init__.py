"""The media servers: the durable queue of changes (per server), batching and path maps, one module per server
protocol (Emby/Jellyfin, Plex) with its doctor checks, and the delivery with retries and backoff.

May import: ``system``, ``config``, ``store``, ``links``.
"""
