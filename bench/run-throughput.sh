#!/bin/sh
# Scheduling throughput: 2000 independent subtasks, each running its own
# command (`true t0` ... `true t1999`) at -j 2, planrun against ninja and
# make on the same graph (build.ninja and Makefile are generated from the
# same list of ids). planrun runs twice per round: with default settings
# (the cache on; the state is removed before each run, so every subtask
# runs and is recorded) and with `cache: false` (nothing recorded, shown
# for information). Prints the best-of-RUNS wall time of each (the tools
# interleaved round by round) and the ratios measured in this run; target:
# planrun with default settings <= 1.0x ninja (issue 14).
#
# Usage: bench/run-throughput.sh
#   PLANRUN=path/to/planrun  binary (default .build/release/planrun, built if missing)
#   PLANRUN_BEFORE=path/to/planrun  another build, run with default settings
#     in the same rounds (a before/after comparison); adds its own lines
#   RUNS=5  COUNT=2000  JOBS=2
# Needs: python3, ninja (apt-get install -y ninja-build), make.
set -eu

. "$(dirname "$0")/common.sh"
need ninja "apt-get install -y ninja-build"
fresh_out throughput

PYTHONPATH="$root/bench" python3 - "$out" "$planrun" "${RUNS:-5}" "${COUNT:-2000}" "${JOBS:-2}" "${PLANRUN_BEFORE:-}" <<'PY'
import os, shutil, subprocess, sys, time
from benchlib import timed
out, planrun, runs, count, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
before = sys.argv[6]
ids = [f"t{i}" for i in range(count)]

# One list of ids, four build files. plan.yaml has planrun's defaults;
# `cache: false` in uncached.yaml makes every subtask run without being
# recorded (like phony targets in ninja and make).
with open(os.path.join(out, "plan.yaml"), "w") as f:
    f.write("version: 1\nname: throughput\nsubtasks:\n")
    for i in ids:
        f.write(f"  - id: {i}\n    run: \"true {i}\"\n")
with open(os.path.join(out, "uncached.yaml"), "w") as f:
    f.write("version: 1\nname: throughput\nsubtasks:\n")
    for i in ids:
        f.write(f"  - id: {i}\n    run: \"true {i}\"\n    cache: false\n")
with open(os.path.join(out, "build.ninja"), "w") as f:
    f.write("rule t\n  command = true $arg\n\n")
    for i in ids:
        f.write(f"build {i}: t\n  arg = {i}\n")
    f.write("build all: phony " + " ".join(ids) + "\ndefault all\n")
with open(os.path.join(out, "Makefile"), "w") as f:
    f.write(".PHONY: all " + " ".join(ids) + "\nall: " + " ".join(ids) + "\n")
    for i in ids:
        f.write(f"{i}:\n\ttrue {i}\n")

# The state of the previous run is renamed aside, not deleted, and the
# renamed folders go when the script ends: creating files right after
# deleting thousands (ext4 without a journal scans past recently deleted
# inodes) would charge planrun's cache writes for the bench's cleanup
# (see fresh_out in common.sh).
trash = os.path.join(out, ".trash")
def clean():
    state = os.path.join(out, ".planrun")
    if os.path.exists(state):
        os.makedirs(trash, exist_ok=True)
        os.rename(state, os.path.join(trash, str(len(os.listdir(trash)))))
    for name in (".ninja_log", ".ninja_deps"):
        try: os.remove(os.path.join(out, name))
        except FileNotFoundError: pass

def once(argv):
    clean()
    return timed(argv, out)

# Rounds of one run of each tool, so that all three see the same load on a
# shared machine (a burst of load during one tool's runs would otherwise
# skew the ratio); best of RUNS for each.
tools = {
    "planrun": [planrun, "build", "plan.yaml", "-j", jobs],
    "planrun (cache: false)": [planrun, "build", "uncached.yaml", "-j", jobs],
    "ninja": ["ninja", "-j", jobs],
    "make": ["make", "-s", "-j", jobs],
}
if before:
    tools["planrun (before)"] = [before, "build", "plan.yaml", "-j", jobs]
results = {name: None for name in tools}
for _ in range(runs):
    for name, argv in tools.items():
        t = once(argv)
        results[name] = t if results[name] is None else min(results[name], t)
print(f"{count} independent subtasks running `true ID`, -j {jobs}, best of {runs}:")
for name, t in results.items():
    print(f"  {name:23s} {t:7.3f} s")
ratio = results["planrun"] / results["ninja"]
target = 1.0
print(f"  planrun / ninja = {ratio:.2f}x (defaults; target <= {target:.2f}x: {'met' if ratio <= target else 'NOT met'})")
print(f"  planrun (cache: false) / ninja = {results['planrun (cache: false)'] / results['ninja']:.2f}x")
print(f"  planrun / make  = {results['planrun'] / results['make']:.2f}x")
if before:
    print(f"  planrun (before) / ninja = {results['planrun (before)'] / results['ninja']:.2f}x"
          f"; planrun / planrun (before) = {results['planrun'] / results['planrun (before)']:.2f}x")
shutil.rmtree(trash, ignore_errors=True)
PY
