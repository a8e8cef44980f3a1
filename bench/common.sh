# Sourced by the scripts in bench/ (after `set -eu`). Sets
#   root     the repository,
#   planrun  the binary to measure, as an absolute path: $PLANRUN, else the
#            release build (built if missing with `swift build -c release
#            --static-swift-stdlib`, which starts about 10 ms sooner than a
#            build that loads the Swift runtime and Foundation as shared
#            libraries; a plain release build if that fails),
# and defines
#   need TOOL HINT   exit with "TOOL is missing (HINT)" unless TOOL is on PATH,
#   fresh_out NAME   set out to bench/out/NAME, emptied.
root=$(cd "$(dirname "$0")/.." && pwd)
planrun=${PLANRUN:-$root/.build/release/planrun}
case "$planrun" in /*) ;; *) planrun="$(pwd)/$planrun" ;; esac
if [ ! -x "$planrun" ]; then
    echo "building release binary: swift build -c release --static-swift-stdlib" >&2
    (cd "$root" && { swift build -c release --static-swift-stdlib >&2 || swift build -c release >&2; })
fi

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
