#!/bin/sh
# No-op rebuild with discovered inputs (depfiles), planrun against ninja.
#
# COUNT compile-like subtasks (2,000): each "compiles" src/I.c into
# build/I.o and writes build/I.d naming src/I.c and 20 headers: 18 of 200
# shared ones under inc/ and 2 of its own under src/. The commands copy
# files (no compiler is needed); planrun declares only src/I.c as the
# input and `depfile: build/I.d`, ninja's rule has `depfile = $out.d` and
# `deps = gcc` (ninja reads each depfile once into .ninja_deps). Each tool
# has its own folder with the same files.
#
# After a full build, a pause longer than planrun's 2 s racy-timestamp
# window and one warm-up no-op each (planrun's writes its up-to-date
# stamp), RUNS rounds time one no-op of each tool, alternating which goes
# first; the best and the median of each, and their ratios, are printed.
# planrun runs with its defaults (`planrun build`), as the README builds
# it; "planrun-full" (`--json`, which never takes the stamp: every
# subtask's declared key, recorded discovered inputs and outputs are
# checked) is shown for comparison.
#
# Usage: bench/depfile-noop.sh
#   PLANRUN=path  binary to measure (default: .build/release/planrun, built
#                 with `swift build -c release` if missing)
#   COUNT=2000    subtasks;  RUNS=15  rounds
# Needs: python3, ninja (apt-get install -y ninja-build). Files go to
# bench/out/depfile-noop/.
set -eu
. "$(dirname "$0")/common.sh"
need ninja "apt-get install -y ninja-build"
fresh_out depfile-noop

PYTHONPATH="$root/bench" python3 - "$planrun" "$out" "${COUNT:-2000}" "${RUNS:-15}" <<'PY'
import os, statistics, sys, time
from benchlib import timed
planrun, out, count, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
jobs = str(os.cpu_count() or 2)
shared = 200

def headers(i):
    """The 20 headers subtask i includes: 18 shared, 2 of its own."""
    picked = []
    k = i * 7
    while len(picked) < 18:
        h = f"inc/h{k % shared}.h"
        if h not in picked:
            picked.append(h)
        k += 13
    return picked + [f"src/{i}_a.h", f"src/{i}_b.h"]

def setup(folder):
    for sub in ("src", "inc", "dep", "build"):
        os.makedirs(os.path.join(folder, sub))
    for h in range(shared):
        with open(os.path.join(folder, "inc", f"h{h}.h"), "w") as f:
            f.write(f"#define H{h} {h}\n")
    for i in range(count):
        with open(os.path.join(folder, "src", f"{i}.c"), "w") as f:
            f.write(f"int f{i}(void) {{ return {i}; }}\n")
        for part in ("a", "b"):
            with open(os.path.join(folder, "src", f"{i}_{part}.h"), "w") as f:
                f.write(f"/* {i} {part} */\n")
        # What `cc -MD` would write, kept aside: ninja removes depfiles it read.
        with open(os.path.join(folder, "dep", f"{i}.d"), "w") as f:
            f.write(f"build/{i}.o: src/{i}.c")
            for h in headers(i):
                f.write(f" \\\n  {h}")
            f.write("\n")

tools = {}
d = os.path.join(out, "planrun"); setup(d)
with open(os.path.join(d, "plan.yaml"), "w") as f:
    f.write("version: 1\nname: depfile-noop\nsubtasks:\n")
    for i in range(count):
        f.write(f"  - id: c{i}\n    run: cp src/{i}.c build/{i}.o && cp dep/{i}.d build/{i}.d\n"
                f"    inputs: [src/{i}.c]\n    outputs: [build/{i}.o]\n    depfile: build/{i}.d\n")
tools["planrun"] = (d, [planrun, "build", "-j", jobs])
d = os.path.join(out, "ninja"); setup(d)
with open(os.path.join(d, "build.ninja"), "w") as f:
    f.write("rule cc\n  command = cp $in $out && cp dep/$n.d $out.d\n  depfile = $out.d\n  deps = gcc\n")
    for i in range(count):
        f.write(f"build build/{i}.o: cc src/{i}.c\n  n = {i}\n")
tools["ninja"] = (d, ["ninja", "-j", jobs])
tools["planrun-full"] = (tools["planrun"][0], tools["planrun"][1] + ["--json"])

def run(name):
    folder, argv = tools[name]
    return timed(argv, folder, name)

full = {name: run(name) for name in ("planrun", "ninja")}
time.sleep(2.5)  # outputs older than planrun's racy-timestamp window
for name in tools:
    run(name)    # warm-up no-op (planrun writes its up-to-date stamp)
assert os.path.exists(os.path.join(tools["planrun"][0], ".planrun", "uptodate")), "no up-to-date stamp was written"
assert os.path.exists(os.path.join(tools["ninja"][0], ".ninja_deps")), "ninja kept no deps log"
times = {name: [] for name in tools}
order = list(tools)
for r in range(runs):
    for name in (order if r % 2 == 0 else list(reversed(order))):
        times[name].append(run(name))

# The no-ops really are no-ops, and a changed shared header is seen.
probe = "inc/h5.h"
users = sum(1 for i in range(count) if probe in headers(i))
for name in ("planrun", "ninja"):
    folder = tools[name][0]
    with open(os.path.join(folder, probe), "a") as f:
        f.write("/* changed */\n")
import subprocess
p = subprocess.run([planrun, "build", "--json"], cwd=tools["planrun"][0], capture_output=True, text=True)
import json
ran = json.loads(p.stdout)["completed"]
assert ran == users, f"planrun reran {ran} subtasks after a header change, expected {users}"

best = {n: min(t) for n, t in times.items()}
median = {n: statistics.median(t) for n, t in times.items()}
print(f"no-op rebuild of {count} subtasks with depfiles (20 headers each, {shared} shared), {runs} interleaved rounds, -j {jobs}")
for name in tools:
    first = f"full build {full[name]:7.3f} s" if name in full else " " * 18
    print(f"  {name:12s} {first}   no-op best {best[name]*1000:7.1f} ms   median {median[name]*1000:7.1f} ms")
print(f"ratio planrun/ninja        best {best['planrun'] / best['ninja']:.2f}x   median {median['planrun'] / median['ninja']:.2f}x   (target <= 1.5x)")
print(f"ratio planrun-full/ninja   best {best['planrun-full'] / best['ninja']:.2f}x   median {median['planrun-full'] / median['ninja']:.2f}x   (no stamp)")
print(f"after changing {probe}: planrun reran {ran} of {count} (the {users} that include it)")
PY
