"""The service's HTTP face: status page, JSON, metrics, webhook triggers ([web] listen)."""
