# Sourced by the scripts in bench/ (after `set -eu`). Sets
#   root     the repository,
#   planrun  the binary to measure, as an absolute path: $PLANRUN when set
#            (to compare another build, e.g. an older one), else
#            .build/release/planrun, built first with exactly the command
#            README.md's "Build and install" gives users,
#            `swift build -c release --static-swift-stdlib` (incremental:
#            quick when nothing changed). If that build fails the benchmark
#            stops: it never measures a binary built another way,
# and defines
#   need TOOL HINT   exit with "TOOL is missing (HINT)" unless TOOL is on PATH,
#   fresh_out NAME   set out to bench/out/NAME, emptied.
root=$(cd "$(dirname "$0")/.." && pwd)
readme_build="swift build -c release --static-swift-stdlib"
if [ -n "${PLANRUN:-}" ]; then
    planrun=$PLANRUN
    case "$planrun" in /*) ;; *) planrun="$(pwd)/$planrun" ;; esac
    [ -x "$planrun" ] || { echo "bench/$(basename "$0"): PLANRUN=$planrun is not an executable" >&2; exit 1; }
else
    planrun=$root/.build/release/planrun
    echo "bench/$(basename "$0"): building with the README's command: $readme_build" >&2
    (cd "$root" && $readme_build >&2) || {
        echo "bench/$(basename "$0"): \`$readme_build\` failed; nothing measured" >&2
        exit 1
    }
fi
echo "bench/$(basename "$0"): measuring $planrun" >&2

need() {
    command -v "$1" >/dev/null || { echo "bench/$(basename "$0"): $1 is missing ($2)" >&2; exit 1; }
}

fresh_out() {
    out="$root/bench/out/$1"
    # The previous tree is renamed aside and deleted when the script ends,
    # not before measuring: on an ext4 without a journal (this project's
    # CI machines), creating a file scans past every inode deleted in the
    # last minutes, so deleting thousands of files right before a run
    # makes each new file cost tens of microseconds more, and a tool that
    # creates files (planrun's cache store) pays for the bench's cleanup.
    if [ -e "$out" ]; then
        trash="$root/bench/out/.trash-$1-$$"
        mv "$out" "$trash"
        trap 'rm -rf "$trash"' EXIT
    fi
    mkdir -p "$out"
}
