"""The Drive feed's API calls are a Prometheus counter (``graylink_drive_api_calls_total``) that grows
with every poll and lives in the database, not a window computed before the scrape; the old gauges stay
while docs/web.md names them. Against the loopback Google (``tests/google_server.py``)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from graylink.drive.feed import drive_status, poll_drive
from graylink.store.db import Store
from graylink.web.metrics import render_metrics
from tests.google_server import FakeGoogle
from tests.test_drive import CLIENT_ID, CLIENT_SECRET, Drive, make_config, write_rclone_conf


def families(store: Store) -> dict[str, tuple[str, float]]:
    body, _ = render_metrics({"drive": drive_status(store)}, {})
    return {s.name: (f.type, s.value) for f in text_string_to_metric_families(body.decode()) for s in f.samples}


def test_drive_api_calls_are_a_counter_that_survives_a_reopened_database(tmp_path: Path) -> None:
    with FakeGoogle() as google:
        google.add_client(CLIENT_ID, CLIENT_SECRET)
        drive = Drive(google)
        write_rclone_conf(tmp_path / "rclone.conf", google, scopes="drive", root_folder_id=drive.root)
        config = make_config(tmp_path, google)
        sent = 0
        with Store(config.paths.database) as store:
            for n in range(3):
                drive.file(f"e{n}.mkv")
                result = poll_drive(config, store)
                assert result.error is None
                sent += result.calls
        with Store(config.paths.database) as store:
            metrics = families(store)
    assert metrics["graylink_drive_api_calls_total"] == ("counter", sent)
    assert sent == sum(
        google.state.calls.get(k, 0) for k in ("changes.getStartPageToken", "changes.list", "files.get", "files.list")
    )
    assert metrics["graylink_drive_api_calls_last_24h"][0] == "gauge"  # deprecated, still served
