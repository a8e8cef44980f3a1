#!/bin/sh
# No-op rebuild of a small real C project: planrun against make.
#
# A C program of 35 `.c` files (src/main.c and src/modI.c, each module with
# its own header under include/ and all of them with include/common.h) and
# a link: 36 subtasks. planrun's plan is written as a user would write it
# (like examples/c-program): `vars` for the compiler and flags, a `foreach`
# over `src/*.c` whose instances declare only their `.c` file and name the
# depfile `cc -MD -MF` writes, and a link that depends on the group. The
# Makefile is the usual equivalent: a pattern rule with `-MD -MF` and
# `-include` of the dependency files. Each tool has its own folder with the
# same files and builds it once (`-j` = the number of CPUs; planrun's
# default).
#
# After a pause longer than planrun's 2 s racy-timestamp window and one
# warm-up no-op each, RUNS rounds time one no-op rebuild of each, in an
# order that alternates round by round: `planrun build` (default settings),
# `make`, and `planrun --version` (the floor: start-up and exit, nothing
# else). "planrun-full" (`build --json`, which never takes the up-to-date
# stamp: every subtask's key, discovered inputs and outputs are checked and
# the run is recorded) is shown for comparison. Prints the best and the
# median wall time of each, the median CPU time (user + system; what a
# loaded machine changes least), and the ratios planrun/make (target: at
# most 3x). Then it
# changes one module's header (a value its `.c` file uses) and checks that both tools rebuild exactly
# that module, main.c (which includes every header) and the link.
#
# Usage: bench/noop-startup.sh
#   PLANRUN=path  binary to measure (default: .build/release/planrun, built
#                 if missing; see common.sh)
#   RUNS=30       rounds
#   PLANRUN_BEFORE=path  another build (e.g. the main branch's), on its own
#                 copy of the project in the same rounds: adds "before" and
#                 "before-full" lines and their ratios to make
# Needs: python3, make, cc. Files go to bench/out/noop-startup/.
set -eu
. "$(dirname "$0")/common.sh"
need make "apt-get install -y make"
need cc "apt-get install -y gcc"
fresh_out noop-startup

PYTHONPATH="$root/bench" python3 - "$planrun" "$out" "${RUNS:-30}" "${PLANRUN_BEFORE:-}" <<'PY'
import json, os, statistics, subprocess, sys, time
from benchlib import timed, timed_cpu
planrun, out, runs, before = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
jobs = str(os.cpu_count() or 2)
modules = 34

PLAN = """\
version: 1
name: noop-startup
vars:
  cc: cc
  cflags: -O2 -Wall -Iinclude
env:
  LC_ALL: C
subtasks:
  - id: compile
    description: Compile ${{ item }}
    foreach: { glob: "src/*.c" }
    run: ${{ vars.cc }} ${{ vars.cflags }} -MD -MF build/${{ item.stem }}.d -c ${{ item }} -o build/${{ item.stem }}.o
    inputs: ["${{ item }}"]
    outputs: ["build/${{ item.stem }}.o"]
    depfile: build/${{ item.stem }}.d
  - id: link
    description: Link build/app
    depends_on: [compile]
    run: ${{ vars.cc }} -o build/app build/*.o
    outputs: [build/app]
"""

MAKEFILE = """\
CC = cc
CFLAGS = -O2 -Wall -Iinclude
export LC_ALL = C
SRCS := $(wildcard src/*.c)
OBJS := $(SRCS:src/%.c=build/%.o)

build/app: $(OBJS)
\t$(CC) -o $@ $(OBJS)

build/%.o: src/%.c
\t$(CC) $(CFLAGS) -MD -MF build/$*.d -c $< -o $@

-include $(OBJS:.o=.d)
"""

def setup(folder):
    for sub in ("src", "include", "build"):
        os.makedirs(os.path.join(folder, sub))
    def write(path, text):
        with open(os.path.join(folder, path), "w") as f:
            f.write(text)
    write("include/common.h", "#ifndef COMMON_H\n#define COMMON_H\n#include <stdio.h>\n#include <string.h>\n"
          "#define SCALE 3\n#endif\n")
    calls = []
    for i in range(modules):
        write(f"include/mod{i}.h", f"#ifndef MOD{i}_H\n#define MOD{i}_H\n#define MOD{i}_BIAS 0\n"
              f"int mod{i}(const char *s);\n#endif\n")
        write(f"src/mod{i}.c", f'#include "common.h"\n#include "mod{i}.h"\n\n'
              f"int mod{i}(const char *s) {{\n    return (int)strlen(s) * SCALE + {i} + MOD{i}_BIAS;\n}}\n")
        calls.append(f"    total += mod{i}(argc > 1 ? argv[1] : \"x\");\n")
    includes = "".join(f'#include "mod{i}.h"\n' for i in range(modules))
    write("src/main.c", '#include "common.h"\n' + includes + "\nint main(int argc, char **argv) {\n"
          "    int total = 0;\n" + "".join(calls) + '    printf("%d\\n", total);\n    return 0;\n}\n')

tools = {}
d = os.path.join(out, "planrun"); setup(d)
with open(os.path.join(d, "plan.yaml"), "w") as f:
    f.write(PLAN)
tools["planrun"] = (d, [planrun, "build", "plan.yaml"])
d = os.path.join(out, "make"); setup(d)
with open(os.path.join(d, "Makefile"), "w") as f:
    f.write(MAKEFILE)
tools["make"] = (d, ["make", "-j", jobs])
tools["planrun-version"] = (out, [planrun, "--version"])
tools["planrun-full"] = (tools["planrun"][0], tools["planrun"][1] + ["--json"])
if before:
    d = os.path.join(out, "before"); setup(d)
    with open(os.path.join(d, "plan.yaml"), "w") as f:
        f.write(PLAN)
    tools["before"] = (d, [before, "build", "plan.yaml"])
    tools["before-full"] = (d, [before, "build", "plan.yaml", "--json"])

def run(name):
    folder, argv = tools[name]
    return timed(argv, folder, name)

def measure(name):
    folder, argv = tools[name]
    return timed_cpu(argv, folder, name)

full = {name: run(name) for name in ("planrun", "make") + (("before",) if before else ())}
for name in ("planrun", "make"):
    app = os.path.join(tools[name][0], "build", "app")
    got = subprocess.run([app, "abc"], capture_output=True, text=True).stdout.strip()
    assert got == str(sum(3 * 3 + i for i in range(modules))), f"{name}'s build/app printed {got!r}"
time.sleep(2.5)  # outputs older than planrun's racy-timestamp window
for name in tools:
    run(name)    # warm-up no-op (planrun writes its up-to-date stamp)
assert os.path.exists(os.path.join(tools["planrun"][0], ".planrun", "uptodate")), "no up-to-date stamp was written"
times = {name: [] for name in tools}
cpu = {name: [] for name in tools}
order = list(tools)
for r in range(runs):
    for name in (order if r % 2 == 0 else list(reversed(order))):
        wall, used = measure(name)
        times[name].append(wall)
        cpu[name].append(used)

# The no-ops really were no-ops, and a changed header is seen by both.
probe = "include/mod7.h"
for name in ("planrun", "make"):
    path = os.path.join(tools[name][0], probe)
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("MOD7_BIAS 0", "MOD7_BIAS 1"))
p = subprocess.run([planrun, "build", "plan.yaml", "--json"], cwd=tools["planrun"][0], capture_output=True, text=True)
summary = json.loads(p.stdout)
reran = sorted(i for i, r in summary["results"].items() if r["status"] != "cached")
assert reran == ["compile:src/main.c", "compile:src/mod7.c", "link"], f"planrun reran {reran}"
p = subprocess.run(["make", "-j", jobs], cwd=tools["make"][0], capture_output=True, text=True)
made = sum(1 for line in p.stdout.splitlines() if line.startswith("cc "))
assert made == 3, f"make ran {made} commands, expected 3:\n{p.stdout}"

best = {n: min(t) for n, t in times.items()}
median = {n: statistics.median(t) for n, t in times.items()}
cpu_median = {n: statistics.median(t) for n, t in cpu.items()}
print(f"no-op rebuild of a C project: 35 .c files and a link (36 subtasks), {runs} interleaved rounds")
for name in tools:
    first = f"full build {full[name]:6.3f} s" if name in full else " " * 17
    print(f"  {name:16s} {first}   wall best {best[name]*1000:6.1f} ms  median {median[name]*1000:6.1f} ms"
          f"   CPU median {cpu_median[name]*1000:6.1f} ms")
def ratios(name, note):
    print(f"ratio {name + '/make':24s} wall best {best[name] / best['make']:5.2f}x  median {median[name] / median['make']:5.2f}x"
          f"   CPU median {cpu_median[name] / cpu_median['make']:5.2f}x   {note}")
ratios("planrun", "(target <= 3x)")
ratios("planrun-version", "(the floor: start-up alone)")
ratios("planrun-full", "(no stamp: every subtask checked)")
if before:
    ratios("before", "(PLANRUN_BEFORE, same rounds)")
    ratios("before-full", "(PLANRUN_BEFORE, no stamp)")
print(f"after changing {probe}: planrun and make each reran main.c, mod7.c and the link")
PY
