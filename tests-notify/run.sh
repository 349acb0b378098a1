#!/usr/bin/env bash
# Notification scenario tests (issue 8): the real `trellis` binary against real peers started by
# the tests (an aiosmtpd SMTP server, a webhook receiver), on SQLite and on PostgreSQL.
#
#   tests-notify/run.sh TRELLIS_BIN VENV_PYTHON [PYTEST_ARGS...]
#
# VENV_PYTHON is a python with tests-notify/requirements.txt installed. Every server gets its own
# port, database and folder (under a temporary TMPDIR removed on exit); the whole run is bounded by
# one wall-clock limit, and `timeout` stops the servers too (they share its process group).
set -euo pipefail
bin=$(realpath "${1:?usage: run.sh TRELLIS_BIN VENV_PYTHON [PYTEST_ARGS...]}")
python=$(realpath -s "${2:?usage: run.sh TRELLIS_BIN VENV_PYTHON [PYTEST_ARGS...]}")
shift 2
here=$(cd "$(dirname "$0")" && pwd)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

limit=${TRELLIS_NOTIFY_TIMEOUT:-600}
cd "$here"
status=0
TRELLIS_BIN=$bin TMPDIR=$work PYTHONDONTWRITEBYTECODE=1 \
  timeout --kill-after=10 "$limit" "$python" -m pytest -q "$@" || status=$?
if [[ $status -eq 124 || $status -eq 137 ]]; then
  echo "notification tests: ran out of their $limit s" >&2
fi
exit "$status"
