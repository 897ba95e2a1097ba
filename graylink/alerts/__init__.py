"""Failure alerts (异常通知): one message per state change, delivered through Apprise.

The service hands every job's outcome to ``deliver.Alerts`` as an
``rules.Observation``; ``rules.evaluate`` (pure) decides what is worth a
message. The event names live in ``graylink.config.alert_events`` (the
config validates ``[alerts] events`` against them at every start).

May import: ``store`` and what it stands on.
"""
