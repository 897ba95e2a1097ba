"""Failure alerts (异常通知): one message per state change, delivered through Apprise.

The service hands every job's outcome to ``deliver.Alerts`` as an
``rules.Observation``; ``rules.evaluate`` (pure) decides what is worth a
message. The package imports nothing itself: the config validates its
``[alerts] events`` against ``events`` alone, at every start of every command.
"""
