#!/usr/bin/env bash
# The CI loop test (tests-ci): the real `trellis` server and two real `trellis-runner` processes
# against a dnf repository of real kernel-devel RPMs (scripts/kernel-repo.sh) and a real git
# repository of a module, on SQLite and on PostgreSQL.
#
#   tests-ci/run.sh BIN_DIR VENV_PYTHON [PYTEST_ARGS...]
#
# BIN_DIR holds the `trellis` and `trellis-runner` binaries ($CARGO_TARGET_DIR/debug); VENV_PYTHON
# is a python with tests-ci/requirements.txt installed. Every server gets its own port, database
# and folder (under a temporary TMPDIR removed on exit); the whole run is bounded by one
# wall-clock limit, and `timeout` stops the server and runners too (they share its process group).
# TRELLIS_CI_BACKENDS=sqlite limits the backends.
set -euo pipefail
bin_dir=$(realpath "${1:?usage: run.sh BIN_DIR VENV_PYTHON [PYTEST_ARGS...]}")
python=$(realpath -s "${2:?usage: run.sh BIN_DIR VENV_PYTHON [PYTEST_ARGS...]}")
shift 2
here=$(cd "$(dirname "$0")" && pwd)

for tool in git make rpmbuild createrepo_c zstd; do
  command -v "$tool" >/dev/null || {
    echo "tests-ci needs $tool (Debian: apt-get install git make rpm createrepo-c zstd)" >&2
    exit 1
  }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

limit=${TRELLIS_CI_TIMEOUT:-420}
cd "$here"
status=0
TRELLIS_BIN_DIR=$bin_dir TMPDIR=$work PYTHONDONTWRITEBYTECODE=1 \
  timeout --kill-after=10 "$limit" "$python" -m pytest -q "$@" || status=$?
if [[ $status -eq 124 || $status -eq 137 ]]; then
  echo "CI loop tests: ran out of their $limit s" >&2
fi
exit "$status"
