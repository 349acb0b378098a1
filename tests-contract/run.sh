#!/usr/bin/env bash
# Contract test: schemathesis generates requests from the OpenAPI document a real `trellis` server
# serves and fails on any 5xx, slow answer, undocumented status code or content type, response
# that does not match its schema, or request that the server and the document judge differently.
#
#   tests-contract/run.sh TRELLIS_BIN SCHEMATHESIS_BIN
#
# The server gets its own free port, its own temporary SQLite database (seeded with the demo project,
# which the document's examples name) and its own runner token; all of it is removed on exit.
set -euo pipefail
bin=$(realpath "${1:?usage: run.sh TRELLIS_BIN SCHEMATHESIS_BIN}")
schemathesis=$(realpath "${2:?usage: run.sh TRELLIS_BIN SCHEMATHESIS_BIN}")
here=$(cd "$(dirname "$0")" && pwd)

work=$(mktemp -d)
server=
cleanup() {
  if [[ -n $server ]]; then
    kill "$server" 2>/dev/null || true
    # One that has not stopped within 10 s is killed: the test never hangs on its own server.
    for _ in $(seq 1 100); do
      kill -0 "$server" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export DATABASE_URL="sqlite://$work/trellis.db?mode=rwc"
"$bin" project add wg 2>"$work/runner.log" || {
  cat "$work/runner.log" >&2
  exit 1
}
token=$("$bin" runner add contract-test --scope wg 2>"$work/runner.log") || {
  cat "$work/runner.log" >&2
  exit 1
}
# Port 0: the kernel picks a free port, which the server logs; no race with other listeners.
# Only warnings and the listening line: a failure's log tail then shows what went wrong.
NO_COLOR=1 RUST_LOG=warn,trellis_server=info "$bin" serve --addr 127.0.0.1:0 --demo --site-root "$work/site" >"$work/server.log" 2>&1 &
server=$!
base=
for _ in $(seq 1 600); do
  base=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$work/server.log" | sed 's/^listening on //' || true)
  [[ -n $base ]] && break
  if ! kill -0 "$server" 2>/dev/null; then
    cat "$work/server.log" >&2
    echo "contract test: trellis exited before listening" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z $base ]]; then
  cat "$work/server.log" >&2
  echo "contract test: trellis did not listen within 60 s" >&2
  exit 1
fi

# Bounded: at most 100 cases per operation and phase, and one wall-clock limit over everything.
# One worker: Python 3.11's ast.parse, which Hypothesis calls to describe its strategies, is not
# thread-safe ("SystemError: AST constructor recursion depth mismatch").
# Run from the temporary folder, so that Hypothesis's and schemathesis's caches go with it.
cd "$work"
status=0
timeout --kill-after=10 150 "$schemathesis" --config-file "$here/schemathesis.toml" run \
  "$base/api/v1/openapi.json" \
  -H "Authorization: Bearer $token" \
  --max-examples 100 \
  --request-timeout 10 \
  --workers 1 \
  --generation-database none \
  --output-truncate false \
  --no-color || status=$?
if [[ $status -ne 0 ]]; then
  if [[ $status -eq 124 || $status -eq 137 ]]; then
    echo "contract test: schemathesis ran out of its 150 s" >&2
  fi
  echo "--- server log (last 40 lines) ---" >&2
  tail -n 40 "$work/server.log" >&2
fi
exit "$status"
