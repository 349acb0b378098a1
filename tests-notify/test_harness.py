"""The harness itself works, before Trellis speaks: the SMTP server receives and fails on demand,
the webhook receiver checks signatures, the real server starts, restarts and is killed on both
backends, reports go in, and the feed helpers read a feed."""

from __future__ import annotations

import smtplib
import threading
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from notify_harness import data, net
from notify_harness.api import assert_well_formed, conditional_statuses, fetch_feed
from notify_harness.server import PostgresDatabase, postgres_available
from notify_harness.webhooks import SIGNATURE_HEADER, sign


def _send(port: int, to: str = "dev@example.test", subject: str = "hello") -> None:
    msg = EmailMessage()
    msg["From"] = "trellis@example.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{''.join(c for c in subject if c.isalnum())}@example.test>"
    msg.set_content("first line\nsecond line ✓\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.send_message(msg)


# --- SMTP -----------------------------------------------------------------------------------------
def test_smtp_sink_receives_a_mail(smtp_sink):
    _send(smtp_sink.port, subject="[trellis] test")
    [mail] = smtp_sink.wait_for(1, timeout=10)
    assert mail.mail_from == "trellis@example.test"
    assert mail.rcpt_tos == ["dev@example.test"]
    assert mail.subject == "[trellis] test"
    assert mail.message_id == "<trellistest@example.test>"
    assert mail.headers("Subject") == ["[trellis] test"]
    assert mail.text() == "first line\nsecond line ✓\n"
    assert b"Subject: [trellis] test" in mail.raw


def test_smtp_deferral_fails_the_sender_then_recovers(smtp_sink):
    smtp_sink.defer()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        _send(smtp_sink.port, subject="deferred")
    [(code, text)] = refused.value.recipients.values()
    assert (code, text) == (451, b"4.3.0 try again later")
    assert len(smtp_sink.deferred_attempts()) == 1
    assert smtp_sink.received() == []
    smtp_sink.accept()
    _send(smtp_sink.port, subject="after deferral")
    assert [m.subject for m in smtp_sink.wait_for(1, timeout=10)] == ["after deferral"]


def test_smtp_down_refuses_connections_then_comes_back_on_its_port(smtp_sink):
    port = smtp_sink.port
    _send(port, subject="before")
    smtp_sink.down()
    with pytest.raises(ConnectionRefusedError):
        _send(port, subject="while down")
    smtp_sink.up()
    assert smtp_sink.port == port
    _send(port, subject="after")
    assert [m.subject for m in smtp_sink.wait_for(2, timeout=10)] == ["before", "after"]


def test_smtp_wait_for_reports_what_it_saw(smtp_sink):
    _send(smtp_sink.port, subject="only one")
    with pytest.raises(AssertionError, match=r"(?s)expected 2 mail\(s\).*only one"):
        smtp_sink.wait_for(2, timeout=0.5)


# --- webhooks -------------------------------------------------------------------------------------
def test_webhook_receiver_checks_signatures(webhook_receiver):
    body = b'{"id": 1, "kind": "opened"}'
    secret = "s3cret"
    good = net.request("POST", webhook_receiver.url + "/hooks/trellis", body,
                       {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body)})
    bad = net.request("POST", webhook_receiver.url + "/hooks/trellis", body,
                      {"Content-Type": "application/json", SIGNATURE_HEADER: sign("other", body)})
    unsigned = net.request("POST", webhook_receiver.url + "/x", body, {})
    assert (good.status, bad.status, unsigned.status) == (200, 200, 200)
    first, second, third = webhook_receiver.wait_for(3, timeout=5)
    assert first.path == "/hooks/trellis"
    assert first.header("content-type") == "application/json"
    assert first.json() == {"id": 1, "kind": "opened"}
    assert first.signature_valid(secret)
    assert not second.signature_valid(secret)
    assert not third.signature_valid(secret)
    # Any change to the body breaks the signature.
    first.body = first.body.replace(b"1", b"2")
    assert not first.signature_valid(secret)
    # Known answer: HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
    assert sign("key", b"The quick brown fox jumps over the lazy dog") == (
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")


def test_webhook_receiver_outage(webhook_receiver):
    webhook_receiver.fail_with(503)
    assert net.post_json(webhook_receiver.url, {"a": 1}).status == 503
    webhook_receiver.succeed()
    assert net.post_json(webhook_receiver.url, {"a": 2}).status == 200
    assert [p.json() for p in webhook_receiver.received()] == [{"a": 2}]
    assert [p.json() for p in webhook_receiver.refused_posts()] == [{"a": 1}]


# --- the server -----------------------------------------------------------------------------------
def test_server_starts_takes_reports_restarts_and_survives_kill(running):
    world, api = running
    server = world.server
    assert api.health().json()["status"] == "ok"
    # The public URL the server is told is the address it listens on.
    assert server.env()["TRELLIS_PUBLIC_URL"] == server.base
    assert server.env()["TRELLIS_SMTP_PORT"] == str(world.smtp.port)

    project = "harness"
    pushed = api.push_commits(project, data.history(3))
    assert pushed["new"] == 3
    k8 = data.kernels("el8")[0]
    first = data.report(project, k8, data.sha(3), "fail", run_id="run-1")
    receipt = api.post_report(first)
    assert receipt["id"] > 0 and "/cell/" in receipt["url"]
    # A retry with the same run_id stores nothing and answers the same id.
    assert api.post_report(first)["id"] == receipt["id"]
    # A burst from concurrent runners.
    burst = [data.report(project, k, data.sha(n), "pass") for k in data.kernels("el9")
             for n in (1, 2, 3)]
    assert len({r["id"] for r in api.post_reports(burst)}) == len(burst)
    assert api.post_report(data.report(project, k8, data.sha(2), "pass"))["id"]
    [breakage] = api.breakages(project)
    assert breakage["first_bad_commit"] == data.sha(3)
    assert breakage["attribution"] == "module"

    # A graceful restart: same port, same data.
    pid = server.proc.pid
    assert server.stop() == 0, server.tail()
    with pytest.raises(OSError):
        net.get(server.base + "/api/v1/health", timeout=2)
    server.start()
    assert server.proc.pid != pid
    assert api.breakages(project)[0]["id"] == breakage["id"]

    # kill -9 in the middle of things, and back.
    server.kill()
    server.start()
    assert api.health().status == 200
    grid = api.get_json(f"/api/v1/projects/{project}/grid?stream=el9")["grid"]
    assert len(grid["columns"]) == 3
    log = server.log_text()
    assert log.count("listening on " + server.base) == 3
    assert "=== harness: killed with SIGKILL ===" in log


def test_cli_commands_fail_loudly(world):
    with pytest.raises(AssertionError, match="exited"):
        world.cli.run("no-such-command")


def test_postgres_database_is_created_and_dropped():
    why = postgres_available()
    if why:
        pytest.fail(why, pytrace=False)
    db = PostgresDatabase()
    assert db.exists()
    assert db.name.startswith("trellis_notify_")
    db.drop()
    assert not db.exists()


# --- data -----------------------------------------------------------------------------------------
def test_test_data_is_deterministic_and_linear():
    h = data.history(12)
    assert [c["sha"] for c in h] == [data.sha(n) for n in range(1, 13)]
    assert all(len(c["sha"]) == 40 and int(c["sha"], 16) >= 0 for c in h)
    assert h[0]["parents"] == [] and all(h[i]["parents"] == [h[i - 1]["sha"]] for i in range(1, 12))
    assert data.history(1, start=13)[0]["parents"] == [data.sha(12)]
    el8 = data.kernels("el8")
    assert el8[0].uname == "4.18.0-513.5.1.el8_9.x86_64"
    assert data.kernel("4.18.0-553.el8_10").uname == "4.18.0-553.el8_10.x86_64"
    assert all(k.stream == "el9" and ".el9" in k.version for k in data.kernels("el9"))


# --- feeds (helpers against a static feed) --------------------------------------------------------
ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>trellis: demo</title>
  <id>tag:example.test,2026:trellis/demo</id>
  <updated>2026-11-02T10:00:00Z</updated>
  <link rel="self" href="http://127.0.0.1/p/demo/feed.atom"/>
  <author><name>Trellis</name></author>
  <entry>
    <title>el8: kernel 4.18.0-553.el8_10 broke the build</title>
    <id>tag:example.test,2026:trellis/demo/event/1</id>
    <updated>2026-11-02T10:00:00Z</updated>
    <link href="http://127.0.0.1/p/demo/breakages"/>
    <content type="text">kernel</content>
  </entry>
</feed>
"""


@pytest.fixture
def static_feed():
    etag = '"v1"'
    last_modified = "Mon, 02 Nov 2026 10:00:00 GMT"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if (self.headers.get("If-None-Match") == etag
                    or self.headers.get("If-Modified-Since") == last_modified):
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/atom+xml; charset=utf-8")
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_modified)
            self.send_header("Content-Length", str(len(ATOM)))
            self.end_headers()
            self.wfile.write(ATOM)

    server = ThreadingHTTPServer(("127.0.0.1", net.free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/feed.atom"
    server.shutdown()
    server.server_close()


def test_feed_helpers_parse_and_revalidate(static_feed):
    feed = fetch_feed(static_feed)
    assert_well_formed(feed)
    assert feed.content_type == "application/atom+xml"
    assert feed.ids() == ["tag:example.test,2026:trellis/demo/event/1"]
    assert feed.entries[0].title == "el8: kernel 4.18.0-553.el8_10 broke the build"
    assert feed.entries[0].updated_parsed[:6] == (2026, 11, 2, 10, 0, 0)
    assert conditional_statuses(static_feed, feed.response) == {
        "If-None-Match": 304, "If-Modified-Since": 304}
