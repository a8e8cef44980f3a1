#!/bin/sh
# Incremental rebuild benchmark (caching).
#
# A 20-layer x 100-subtask graph: subtask (L, j) reads the outputs of
# (L-1, j) and (L-1, (j+1) mod 100) (layer 0 reads in/j.txt) and writes
# out/L-j.txt. After a full build, one input (in/0.txt) is changed and the
# wall time of the rebuild is measured for planrun and ninja (best of RUNS,
# the tools alternating round by round; each run writes a new content, so
# each rebuilds the same cone of subtasks). planrun runs with default
# settings. Prints both times, the ratio planrun/ninja and the target
# (<= 1.3x, issue 14).
#
# Usage: bench/cache-incremental.sh
#   PLANRUN=path  binary (default: .build/release/planrun, built if missing)
#   RUNS=5
#   PLANRUN_BEFORE=path  another build, on its own copy of the graph in the
#     same rounds (a before/after comparison); adds its own lines
# Needs: python3, ninja (apt-get install -y ninja-build).
# Files go to bench/out/cache-incremental/.
set -eu
. "$(dirname "$0")/common.sh"
need ninja "apt-get install -y ninja-build"
fresh_out cache-incremental

PYTHONPATH="$root/bench" python3 - "$planrun" "$out" "${RUNS:-5}" "${PLANRUN_BEFORE:-}" <<'PY'
import os, shutil, subprocess, sys, time
from benchlib import make_inputs, timed
planrun, out, runs, before = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
layers, width = 20, 100
jobs = str(os.cpu_count() or 2)

def deps(L, j):
    return [f"out/{L-1}-{j}.txt", f"out/{L-1}-{(j+1) % width}.txt"] if L > 0 else [f"in/{j}.txt"]

def setup(folder):
    make_inputs(folder, width)

tools = {}
d = os.path.join(out, "planrun"); setup(d)
with open(os.path.join(d, "plan.yaml"), "w") as f:
    f.write("version: 1\nname: incremental\nsubtasks:\n")
    for L in range(layers):
        for j in range(width):
            f.write(f"  - id: s{L}-{j}\n    run: cat {' '.join(deps(L, j))} | sha256sum > out/{L}-{j}.txt\n")
            f.write(f"    outputs: [out/{L}-{j}.txt]\n")
            if L == 0:
                f.write(f"    inputs: [in/{j}.txt]\n")
            else:
                f.write(f"    depends_on: [s{L-1}-{j}, s{L-1}-{(j+1) % width}]\n")
tools["planrun"] = (d, [planrun, "build", "-j", jobs])
if before:
    b = os.path.join(out, "before"); setup(b)
    shutil.copy(os.path.join(d, "plan.yaml"), b)
    tools["before"] = (b, [before, "build", "-j", jobs])
d = os.path.join(out, "ninja"); setup(d)
with open(os.path.join(d, "build.ninja"), "w") as f:
    f.write("rule hash\n  command = cat $in | sha256sum > $out\n")
    for L in range(layers):
        for j in range(width):
            f.write(f"build out/{L}-{j}.txt: hash {' '.join(deps(L, j))}\n")
tools["ninja"] = (d, ["ninja", "-j", jobs])

def run(name):
    folder, argv = tools[name]
    return timed(argv, folder, name)

full = {name: run(name) for name in tools}
time.sleep(2.5)
for name in tools:
    run(name)
# Rounds alternate the tools (planrun, ninja, planrun, ...) so that both
# see the same load on a shared machine; each run rebuilds the same cone.
times = {name: [] for name in tools}
for r in range(runs):
    for name, (folder, _) in tools.items():
        with open(os.path.join(folder, "in", "0.txt"), "w") as f:
            f.write(f"changed {r}\n")
        times[name].append(run(name))
best = {name: min(t) for name, t in times.items()}
a = open(os.path.join(out, "planrun", "out", f"{layers-1}-0.txt")).read()
b = open(os.path.join(out, "ninja", "out", f"{layers-1}-0.txt")).read()
assert a == b, "planrun and ninja disagree on the final output"
print(f"one input changed in a {layers}x{width} graph, best of {runs}, -j {jobs}")
for name in tools:
    print(f"  {name:8s} full build {full[name]:8.3f} s   incremental {best[name]:8.3f} s")
ratio = best['planrun'] / best['ninja']
target = 1.3
print(f"ratio planrun/ninja {ratio:.2f}x (target <= {target:.2f}x: {'met' if ratio <= target else 'NOT met'})")
if before:
    print(f"ratio before/ninja {best['before'] / best['ninja']:.2f}x; planrun/before {best['planrun'] / best['before']:.2f}x")
PY
