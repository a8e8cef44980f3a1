#!/bin/sh
# Size of the state database after many builds of a large plan.
#
# A plan of COUNT independent subtasks; subtask I copies in/I.txt (a few
# bytes) to out/I.txt, with that file as its input and the copy as its
# output, so every subtask has a key over one file, one output to check and
# a row in each table (runs, subtasks, attempts, history, stat cache). The
# plan is built BUILDS times with default settings (`planrun build
# plan.yaml`, the cache on, -j the number of cores). The first build runs
# everything; before each later build CHANGE percent of the inputs (the
# same files for both binaries, a different sample each round) get a new
# line, so those subtasks rerun and the rest are cached: the common case of
# a rebuild, and the one whose rows are mostly `cached`. Without a change
# between builds the up-to-date stamp would answer and no run would be
# recorded at all. CHANGE=100 is the worst case (every subtask reruns and
# records an attempt each build); at COUNT=100000 it takes hours here, so
# the default is 1 percent and the worst case is run at a smaller COUNT.
#
# With PEER set (another planrun binary, such as main's build), each round
# builds with planrun and then with the peer, each in its own copy of the
# tree, so both see the same load; the per-build times are compared as the
# median of the rebuild ratios (the first, full build is printed apart).
# Runs are pruned by planrun itself (the newest 20 kept, in batches of 10),
# as a user's builds would be.
#
# Prints the size of state.db and of its -wal after the last build, against
# the target (state.db <= 300 MB after 25 builds of 100,000 subtasks), and
# the bytes per subtask per kept run.
#
# Usage: bench/state-size.sh
#   PLANRUN=path/to/planrun  binary (default .build/release/planrun, built if missing)
#   PEER=path/to/planrun     optional second binary, interleaved per build
#   COUNT=100000  BUILDS=25  CHANGE=1  SEED=14
# Needs: python3.
set -eu

. "$(dirname "$0")/common.sh"
fresh_out state-size
peer=${PEER:-}
case "$peer" in ""|/*) ;; *) peer="$(pwd)/$peer" ;; esac

PYTHONPATH="$root/bench" python3 - "$out" "$planrun" "$peer" "${COUNT:-100000}" "${BUILDS:-25}" \
    "${CHANGE:-1}" "${SEED:-14}" <<'PY'
import os, random, statistics, sys
from benchlib import make_inputs, timed
out, planrun, peer = sys.argv[1], sys.argv[2], sys.argv[3]
count, builds, change, seed = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
target_mb, target_count, target_builds = 300, 100000, 25
rng = random.Random(seed)

tools = {"planrun": planrun}
if peer:
    tools["peer"] = peer
for name in tools:
    folder = os.path.join(out, name)
    make_inputs(folder, count)
    with open(os.path.join(folder, "plan.yaml"), "w") as f:
        f.write("version: 1\nname: state-size\nsubtasks:\n")
        for i in range(count):
            f.write(f"  - id: copy-{i}\n    run: cp in/{i}.txt out/{i}.txt\n"
                    f"    inputs: [in/{i}.txt]\n    outputs: [out/{i}.txt]\n")

def size(path):
    try: return os.path.getsize(path)
    except FileNotFoundError: return 0

times = {name: [] for name in tools}
changed = max(1, round(count * change / 100)) if change > 0 else 0
for b in range(builds):
    sample = rng.sample(range(count), changed) if b > 0 else []
    for name, binary in tools.items():
        folder = os.path.join(out, name)
        for i in sample:
            with open(os.path.join(folder, "in", f"{i}.txt"), "a") as f:
                f.write(f"round {b}\n")
        times[name].append(timed([binary, "build", "plan.yaml"], folder, name))
    line = "  ".join(f"{name} {times[name][-1]:7.2f} s "
                     f"{size(os.path.join(out, name, '.planrun', 'state.db')) / 1e6:7.1f} MB" for name in tools)
    print(f"build {b + 1:2d}/{builds}: {changed if b else count} of {count} run  {line}", flush=True)

print(f"\n{builds} builds of {count} subtasks, {change:g}% of the inputs changed before each rebuild:")
for name in tools:
    state = os.path.join(out, name, ".planrun", "state.db")
    db, wal = size(state), size(state + "-wal")
    kept = min(builds, 30)  # planrun keeps 20 runs, pruning once 30 are recorded
    print(f"  {name:8s} state.db {db / 1e6:8.1f} MB  -wal {wal / 1e6:6.1f} MB  "
          f"({db / (kept * count):.0f} bytes per subtask per kept run)")
db = size(os.path.join(out, "planrun", ".planrun", "state.db"))
if count == target_count and builds == target_builds:
    verdict = "met" if db <= target_mb * 1e6 else "NOT met"
    print(f"  target: state.db <= {target_mb} MB after {target_builds} builds of {target_count}: {verdict}")
else:
    print(f"  target: state.db <= {target_mb} MB after {target_builds} builds of {target_count} "
          f"(not this run: COUNT={count} BUILDS={builds})")
if peer:
    pdb = size(os.path.join(out, "peer", ".planrun", "state.db"))
    print(f"  size planrun / peer = {db / pdb:.2f}x")
    print(f"  first build: planrun / peer = {times['planrun'][0] / times['peer'][0]:.2f}x")
    if builds > 1:
        ratios = [a / b for a, b in zip(times["planrun"][1:], times["peer"][1:])]
        print(f"  rebuilds: median planrun / peer = {statistics.median(ratios):.2f}x "
              f"(range {min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)})")
PY
