#!/bin/sh
# No-op rebuild benchmark (caching).
#
# 10,000 independent file subtasks (`cp in/I.txt out/I.txt`). Each tool
# builds everything once, then (after a pause longer than planrun's 2 s
# racy-timestamp window, and one warm-up no-op run so that every stat-cache
# entry is stored) the best-of-RUNS wall time of a no-op rebuild is measured
# for:
#   - planrun build  (the warm-up writes the up-to-date stamp, so this is
#                     one stat per recorded path: .planrun/uptodate)
#   - planrun build --json  ("planrun-full": the per-subtask path, content
#                     hashes with the stat cache in .planrun/state.db)
#   - ninja          (mtimes, .ninja_log)
#   - go-task        (`sources`/`generates` with `method: checksum`)
# and printed with the ratios planrun/ninja and planrun/go-task, measured in
# the same run.
#
# Usage: bench/cache-noop.sh
#   PLANRUN=path  binary to measure (default: .build/release/planrun, built
#                 with `swift build -c release` if missing)
#   COUNT=10000   number of subtasks;  RUNS=5  runs per tool (best counts)
# Needs: python3, ninja (apt-get install -y ninja-build), go-task
# (pip install go-task-bin). Files go to bench/out/cache-noop/.
set -eu
. "$(dirname "$0")/common.sh"
need ninja "apt-get install -y ninja-build"
need task "pip install go-task-bin"
fresh_out cache-noop

PYTHONPATH="$root/bench" python3 - "$planrun" "$out" "${COUNT:-10000}" "${RUNS:-5}" <<'PY'
import os, subprocess, sys, time
from benchlib import make_inputs, timed
planrun, out, count, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
jobs = str(os.cpu_count() or 2)

def setup(folder):
    make_inputs(folder, count)

tools = {}
# planrun
d = os.path.join(out, "planrun"); setup(d)
with open(os.path.join(d, "plan.yaml"), "w") as f:
    f.write("version: 1\nname: noop\nsubtasks:\n")
    for i in range(count):
        f.write(f"  - id: t{i}\n    run: cp in/{i}.txt out/{i}.txt\n    inputs: [in/{i}.txt]\n    outputs: [out/{i}.txt]\n")
tools["planrun"] = (d, [planrun, "build", "-j", jobs])
# ninja
d = os.path.join(out, "ninja"); setup(d)
with open(os.path.join(d, "build.ninja"), "w") as f:
    f.write("rule cp\n  command = cp $in $out\n")
    for i in range(count):
        f.write(f"build out/{i}.txt: cp in/{i}.txt\n")
tools["ninja"] = (d, ["ninja", "-j", jobs])
# go-task
d = os.path.join(out, "go-task"); setup(d)
with open(os.path.join(d, "Taskfile.yml"), "w") as f:
    f.write("version: '3'\nmethod: checksum\ntasks:\n  default:\n    deps:\n")
    for i in range(count):
        f.write(f"      - t{i}\n")
    for i in range(count):
        f.write(f"  t{i}:\n    cmds: [cp in/{i}.txt out/{i}.txt]\n    sources: [in/{i}.txt]\n    generates: [out/{i}.txt]\n")
tools["go-task"] = (d, ["task", "--concurrency", jobs, "--silent"])
# planrun's per-subtask path, for comparison: `--json` never takes the
# up-to-date stamp, so every subtask's key and outputs are checked.
tools["planrun-full"] = (tools["planrun"][0], tools["planrun"][1] + ["--json"])

def run(name):
    folder, argv = tools[name]
    return timed(argv, folder, name)

full = {name: run(name) for name in tools if name != "planrun-full"}
time.sleep(2.5)  # outputs older than planrun's racy-timestamp window
for name in tools:
    run(name)    # warm-up no-op (fills planrun's stat cache, writes its up-to-date stamp)
assert os.path.exists(os.path.join(tools["planrun"][0], ".planrun", "uptodate")), "no up-to-date stamp was written"
# sanity: the no-op really did nothing
for name, (folder, _) in tools.items():
    assert open(os.path.join(folder, "out", f"{count-1}.txt")).read() == f"input {count-1}\n", name
best = {name: min(run(name) for _ in range(runs)) for name in tools}
print(f"no-op rebuild of {count} file subtasks, best of {runs}, -j {jobs}")
for name in tools:
    first = f"full build {full[name]:8.3f} s" if name in full else " " * 19
    print(f"  {name:12s} {first}   no-op {best[name]:8.3f} s")
print(f"ratio planrun/ninja        {best['planrun'] / best['ninja']:.1f}x")
print(f"ratio planrun/go-task      {best['planrun'] / best['go-task']:.2f}x")
print(f"ratio planrun-full/ninja   {best['planrun-full'] / best['ninja']:.1f}x   (every subtask checked, no stamp)")
PY
