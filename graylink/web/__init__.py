"""The service's HTTP face: status page, JSON, metrics, webhook triggers ([web] listen).

Pages, JSON and webhooks answer from the store; the running service wires them in
(``graylink.service.web_jobs``). May import: ``config``, ``store``, ``notify``, ``report`` and what they stand on; never
``service`` or ``cli``.
"""
