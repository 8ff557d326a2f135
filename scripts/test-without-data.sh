#!/usr/bin/env bash
# Run the test suite as on a fresh clone with no staged data: from a copy of this checkout in a
# temporary folder (so ../shared/data is not beside it) with ARCHZOO_DATA unset. Tests that need the
# staged data skip with their reason; everything else must pass. Needs .venv (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/archzoo"
tar --exclude=./.venv --exclude=./runs --exclude=./.git -cf - . | tar -xf - -C "$tmp/archzoo"
cd "$tmp/archzoo"
test ! -e ../shared/data
env -u ARCHZOO_DATA "$repo/.venv/bin/python" -m pytest -q -m "not slow" -n "${ARCHZOO_TEST_WORKERS:-2}" --dist loadfile -p no:cacheprovider "$@"
