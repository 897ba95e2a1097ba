"""graylink: keep a local symlink tree of a cloud media library in sync, and tell Emby what changed."""

__version__ = "0.1.0"
