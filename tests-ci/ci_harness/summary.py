"""What a run prints after its results (conftest's terminal summary): how long each step took, the
facts a passing run rests on, and the checks that could not be made."""

from __future__ import annotations

# (backend, step) -> seconds.
TIMINGS: dict[tuple[str, str], float] = {}
# (backend, what was seen).
FACTS: list[tuple[str, str]] = []
# Checks skipped for a reason worth telling (printed once each).
NOTES: list[str] = []
