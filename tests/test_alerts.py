"""Alerts: one message per state change, through the real apprise library to a loopback ``json://`` receiver."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from service_support import Loop, wait_for
from web_support import apprise_receiver

from graylink.alerts.deliver import Alerts, masked
from graylink.alerts.rules import Alert, Observation, ServerSeen, State, evaluate
from graylink.store.db import Store

from conftest import Library

LIB = "/mnt/gdrive"


def run(observations: list[Observation], state: State | None = None) -> tuple[State, list[Alert]]:
    state = state or State()
    sent: list[Alert] = []
    for seen in observations:
        state, alerts = evaluate(state, seen, LIB)
        sent.extend(alerts)
    return state, sent


def test_a_mount_down_for_ten_checks_is_one_alert_and_one_recovery() -> None:
    down = [Observation(at=100 + i, mount_ok=False, mount_message="anchor: .anchor is missing") for i in range(10)]
    state, sent = run([*down, Observation(at=400, mount_ok=True)])
    assert [a.event for a in sent] == ["mount", "mount"]
    assert "down" in sent[0].title and ".anchor is missing" in sent[0].body
    assert "back" in sent[1].title and "5 min" in sent[1].body
    assert state.mount_down_since is None


def test_failing_cycles_while_the_mount_is_down_say_nothing_more() -> None:
    seen = [Observation(at=1, mount_ok=False)] + [Observation(at=2 + i, cycle_error="source gone") for i in range(5)]
    _, sent = run(seen)
    assert [a.event for a in sent] == ["mount"]


def test_cycles_failing_three_times_then_recovering() -> None:
    failing = [Observation(at=i, cycle_error="database is locked") for i in range(5)]
    _, sent = run([*failing, Observation(at=9, cycle_error="")])
    assert [(a.event, a.kind) for a in sent] == [("cycle", "failure"), ("cycle", "success")]
    assert "database is locked" in sent[0].body


def test_a_refused_key_is_told_at_once_unreachable_after_three_cycles() -> None:
    refused = ServerSeen(ok=False, refused=True, error="401 Unauthorized")
    down = ServerSeen(ok=False, error="connection refused")
    _, sent = run([Observation(at=1, servers={"emby": refused})])
    assert len(sent) == 1 and "refuses" in sent[0].body
    _, sent = run([Observation(at=i, servers={"plex": down}) for i in range(2)])
    assert sent == []
    _, sent = run(
        [Observation(at=i, servers={"plex": down}) for i in range(4)]
        + [Observation(at=9, servers={"plex": ServerSeen(ok=True)})]
    )
    assert [a.kind for a in sent] == ["failure", "success"]


def test_brake_conflicts_and_feed_each_speak_once() -> None:
    seen = [
        Observation(at=1, braked=300, conflicts=("TV/A.mkv",)),
        Observation(at=2, braked=300, conflicts=("TV/A.mkv",)),
        Observation(at=3, braked=0, conflicts=("TV/A.mkv", "TV/B.mkv")),
        Observation(at=4, feed_ok=False, feed_refused=True, feed_error="insufficient scopes"),
        Observation(at=5, feed_ok=False, feed_refused=True, feed_error="insufficient scopes"),
        Observation(at=6, feed_ok=True),
    ]
    _, sent = run(seen)
    assert [a.event for a in sent] == ["brake", "conflicts", "conflicts", "feed", "feed"]
    assert "graylink reconcile --force" in sent[0].body
    assert "TV/B.mkv" in sent[2].body and "TV/A.mkv" not in sent[2].body


def test_events_filter_and_state_survives_a_new_process(tmp_path: pytest.TempPathFactory) -> None:
    delivered: list[tuple[str, str]] = []
    database = str(tmp_path / "a.db")  # type: ignore[operator]

    def sender(url: str, alert: Alert) -> bool:
        delivered.append((url, alert.title))
        return True

    with Store(database) as store:
        first = Alerts(["json://127.0.0.1:9/x"], ["mount"], LIB, sender)
        assert first.observe(store, Observation(at=1, mount_ok=False))
        assert first.observe(store, Observation(at=2, cycle_error="x")) == []  # suppressed: mount is down
        first.close()
    with Store(database) as store:  # a restart mid-outage: nothing new to say
        again = Alerts(["json://127.0.0.1:9/x"], ["mount"], LIB, sender)
        assert again.observe(store, Observation(at=3, mount_ok=False)) == []
        braked = again.observe(store, Observation(at=4, braked=500))
        assert braked == []  # "brake" is not in [alerts] events
        again.close()
    assert len(delivered) == 1


def test_a_failing_notifier_is_logged_without_its_secret(caplog: pytest.LogCaptureFixture, tmp_path: object) -> None:
    url = "tgram://123456:made-up-bot-token/987654"

    def broken(url: str, alert: Alert) -> bool:
        raise OSError("network is unreachable")

    caplog.set_level(logging.INFO)
    with Store(str(tmp_path) + "/b.db") as store:  # type: ignore[operator]
        alerts = Alerts([url], [], LIB, broken)
        alerts.observe(store, Observation(at=1, mount_ok=False))
        alerts.close()
    assert "alert to tgram://… failed" in caplog.text
    assert "made-up-bot-token" not in caplog.text
    assert masked(url) == "tgram://…"


def test_with_debug_logging_no_request_line_shows_the_secret_in_the_url(
    caplog: pytest.LogCaptureFixture, tmp_path: object
) -> None:
    """Telegram, ServerChan and json:// carry their token in the URL path: urllib3 logs that path at DEBUG (-v)."""
    from graylink.alerts.deliver import apprise_sender

    caplog.set_level(logging.DEBUG)
    with apprise_receiver() as receiver, Store(str(tmp_path) + "/d.db") as store:  # type: ignore[operator]
        url = receiver.url + "/made-up-secret-path-token"
        alerts = Alerts([url], [], LIB, apprise_sender)
        alerts.observe(store, Observation(at=1, mount_ok=False))
        alerts.close()
        assert receiver.titles(), "the alert went out"
    assert '"POST ' in caplog.text  # urllib3's request line was logged (scrubbed)
    assert "made-up-secret-path-token" not in caplog.text


def test_the_loop_alerts_once_per_change_through_apprise(lib: Library, loop_of: Callable[[], Loop]) -> None:
    lib.add("TV/Show/e1.mkv")
    lib.add(".anchor")
    with apprise_receiver() as receiver:
        lib.write_ini(
            scan={"interval": "1s", "workers": "2"},
            mount={"anchor": ".anchor", "check_interval": "1s"},
            alerts={"urls": receiver.url},
        )
        loop = loop_of()
        loop.wait_log("reconcile (walk)")
        (lib.source / ".anchor").unlink()  # the mount "drops"
        wait_for("the down alert", lambda: len(receiver.titles()) >= 1, loop.proc)
        loop.wait_log("anchor", count=10)  # ten failed checks, ten cycles
        assert len(receiver.titles()) == 1 and "down" in receiver.titles()[0]
        assert loop.stop() == 0
        restarted = loop_of()  # a restart mid-outage says nothing new
        restarted.wait_log("anchor", count=3)
        assert len(receiver.titles()) == 1
        lib.add(".anchor")
        wait_for("the recovery alert", lambda: len(receiver.titles()) == 2, restarted.proc)
        message = receiver.messages[1]
        assert "back" in message["title"] and message["type"] == "success" and "It was down for" in message["message"]
        restarted.wait_log("reconcile (walk)", count=3)
        assert len(receiver.titles()) == 2
        assert restarted.stop() == 0
    # graylink's own line says what went out; Apprise's chatter ("Notifying 1 service(s).") is for -vv.
    log = restarted.text()
    assert "alert: graylink: the mount of" in log
    assert "Notifying" not in log and "Sent JSON POST" not in log, log


def test_an_alert_url_apprise_cannot_use_is_reported_at_start_without_its_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    alerts = Alerts(["nosuchservice://made-up-secret@host", "json://127.0.0.1:9/ok"], [], LIB)
    alerts.report_unusable()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["alerts: nosuchservice://… is not a URL Apprise understands: it gets no alert (graylink doctor)"]
    assert "made-up-secret" not in caplog.text


# ------------------------------------------------------------- graylink alerts test


def test_alerts_test_sends_one_message_through_apprise_to_each_url(lib: Library) -> None:
    with apprise_receiver() as receiver, apprise_receiver() as second:
        lib.write_ini(alerts={"urls": f"{receiver.url}, {second.url}"})
        done = lib.run("alerts", "test")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "alerts test: sent to 2 of 2 services"
        assert receiver.titles() == ["graylink: test alert"] and second.titles() == ["graylink: test alert"]
        assert "its alerts reach you" in receiver.messages[0]["message"]
        assert receiver.messages[0]["type"] == "success"


def test_alerts_test_with_a_service_down_exits_1_without_the_url(lib: Library) -> None:
    with apprise_receiver() as receiver:
        down = apprise_receiver()
        with down as gone:
            dead = f"json://127.0.0.1:{gone.port}/made-up-secret-token"
        # the second receiver has shut down: its port refuses connections
        lib.write_ini(alerts={"urls": f"{receiver.url}, {dead}"})
        done = lib.run("alerts", "test")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == ["graylink: alerts test: sent to 1 of 2 services; failed: json://… (not delivered)"], lines
    assert "made-up-secret-token" not in done.stdout + done.stderr
    assert str(gone.port) not in done.stdout + done.stderr


def test_alerts_test_without_urls_is_one_line_and_exit_2(lib: Library) -> None:
    lib.write_ini()
    done = lib.run("alerts", "test")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "graylink: alerts test: no [alerts] urls configured (or GRAYLINK_ALERTS_URLS): nothing to send"
    ]


def test_alerts_test_with_a_url_apprise_cannot_use_names_its_scheme_only(lib: Library) -> None:
    lib.write_ini(alerts={"urls": "nosuchservice://made-up-secret@host"})
    done = lib.run("alerts", "test")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "graylink: alerts test: sent to 0 of 1 service; failed: nosuchservice://… (not a URL Apprise understands)"
    ]
    assert "made-up-secret" not in done.stderr + done.stdout
