"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, recording every message it accepts.

Outages come in two kinds, as a real relay has them:
- ``down()``: the server is stopped, connections are refused (``up()`` starts it again on the same
  port);
- ``defer()``: it answers every recipient with ``451 4.3.0 try again later`` (greylisting, a full
  queue) and counts the attempts; ``accept()`` ends it.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from .net import free_port

DEFER_REPLY = "451 4.3.0 try again later"


@dataclass
class ReceivedMail:
    """One accepted message: the envelope and the parsed message (``email.policy.default``)."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    received_at: float = field(default_factory=time.time)

    def header(self, name: str) -> str | None:
        """The header's value (unfolded); the raw text when the stdlib cannot parse it."""
        try:
            value = self.message[name]
            # Unfolded; a value folded right after "Name:" would keep a leading space.
            return None if value is None else str(value).strip()
        except Exception:
            raw = [v for k, v in self.message.raw_items() if k.lower() == name.lower()]
            return " ".join(raw[0].split()) if raw else None

    def headers(self, name: str) -> list[str]:
        """Every occurrence of a header (to check that one appears exactly once)."""
        return [" ".join(str(v).split()) for k, v in self.message.raw_items()
                if k.lower() == name.lower()]

    @property
    def subject(self) -> str:
        return self.header("Subject") or ""

    @property
    def message_id(self) -> str | None:
        return self.header("Message-ID")

    def text(self) -> str:
        """The text/plain body (decoded, line endings normalised to \\n)."""
        part = self.message.get_body(preferencelist=("plain",))
        if part is None:
            raise AssertionError(f"mail {self.subject!r} has no text/plain part")
        return part.get_content().replace("\r\n", "\n")

    def summary(self) -> str:
        return f"{self.message_id} to {','.join(self.rcpt_tos)}: {self.subject}"


@dataclass
class DeferredAttempt:
    mail_from: str
    rcpt: str
    at: float = field(default_factory=time.time)


class _Handler:
    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.sink.deferring:
            with self.sink._lock:
                self.sink.deferred.append(DeferredAttempt(envelope.mail_from, address))
            return DEFER_REPLY
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        with self.sink._lock:
            self.sink.messages.append(
                ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), raw, message)
            )
            self.sink._changed.notify_all()
        return "250 Message accepted for delivery"


class SmtpSink:
    """aiosmtpd ``Controller`` on 127.0.0.1 and a free port; thread-safe record of what arrived."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None):
        self.host = host
        self.port = port or free_port()
        self.messages: list[ReceivedMail] = []
        self.deferred: list[DeferredAttempt] = []
        self.deferring = False
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._controller: Controller | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def up(self) -> "SmtpSink":
        """Starts (or restarts, on the same port) the server."""
        if self._controller is not None:
            return self
        deadline = time.monotonic() + 10
        while True:
            controller = Controller(
                _Handler(self),
                hostname=self.host,
                port=self.port,
                server_hostname="smtp-sink.test",
                enable_SMTPUTF8=True,
                ready_timeout=10,
            )
            try:
                controller.start()
                break
            except Exception:  # the port may still be held for a moment after down()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._controller = controller
        return self

    def down(self) -> None:
        """Stops the server: new connections are refused and open sessions are cut."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def is_up(self) -> bool:
        return self._controller is not None

    def defer(self) -> None:
        """Answers every RCPT with 451 4.3.0 until ``accept()``."""
        self.deferring = True

    def accept(self) -> None:
        self.deferring = False

    def close(self) -> None:
        self.down()

    # --- reading -----------------------------------------------------------------------------
    def received(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self.messages)

    def deferred_attempts(self) -> list[DeferredAttempt]:
        with self._lock:
            return list(self.deferred)

    def wait_for(self, count: int, timeout: float, what: str = "") -> list[ReceivedMail]:
        """Waits until at least ``count`` messages arrived; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    got = "\n  ".join(m.summary() for m in self.messages) or "(none)"
                    raise AssertionError(
                        f"expected {count} mail(s) {what}within {timeout:.0f} s, received "
                        f"{len(self.messages)}:\n  {got}\n  deferred attempts: {len(self.deferred)}"
                    )
                self._changed.wait(min(left, 0.2))
            return list(self.messages)

    def describe(self) -> str:
        """For failure reports: every message and deferral seen."""
        with self._lock:
            lines = [f"SMTP sink 127.0.0.1:{self.port} ({'up' if self.is_up else 'down'}, "
                     f"{'deferring' if self.deferring else 'accepting'})"]
            lines += [f"  mail {m.summary()}" for m in self.messages]
            lines.append(f"  deferred attempts: {len(self.deferred)}")
        return "\n".join(lines)
