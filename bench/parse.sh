#!/bin/sh
# Parse benchmark: `planrun validate` against a raw libyaml event scan of
# the same file (bench/yamlscan.c: libyaml's parser and nothing else), the
# two interleaved in every round so that both see the same machine load.
#
# 1. A 10,000-subtask plan (inputs, outputs, up to three dependencies among
#    the previous 200 subtasks; about 2 MB; its input files exist, so
#    `validate` finds every plain input). Each round runs the scan,
#    `planrun validate` and `planrun plan --format json`.
#    Target: validate <= 2x the scan.
# 2. A 50 MB plan whose bulk is one flow list of integers in a subtask's
#    `with:` (free-form metadata): `with: {data: [1, 2, 3, ...]}`, 20
#    numbers to a line (FLOW=numbers, the default: 5.4 million values), or
#    one-digit values without spaces, `[1,2,3,...,9,1,...]` (FLOW=digits:
#    22 million values, about the most 50 MB can hold). Each round runs the scan
#    and `planrun validate`.
#    Targets: validate <= 2x the scan's time, peak memory <= 300 MB.
# Every run goes through `/usr/bin/time -f %M` (peak resident set size);
# wall time is measured around it, the same way for both tools. Each round
# prints the times, the ratios and the peak memory; the summary gives the
# best time of each tool over the rounds, and the range of the per-round
# ratios.
# 3. A 100,000-subtask plan: peak memory of `planrun validate` (one run),
#    against a 300 MB target.
#
# Usage: bench/parse.sh
#   PLANRUN=path/to/planrun  binary to measure (default: .build/release/planrun,
#                            built if missing; see bench/common.sh)
#   RUNS=5                   rounds
#   BIG_MB=50                size of the flow-list plan
#   FLOW=numbers             its list: `numbers` or `digits` (see 2.)
#   PLANRUN_BEFORE=path/to/planrun  another build, measured in the same rounds
#                            (its validate and plan json right after PLANRUN's);
#                            adds its ratios to the scan and after/before
#   ONLY_10K=1               only part 1 (while iterating; the default run is
#                            complete)
# Needs: cc, libyaml-dev, python3, /usr/bin/time (Debian package `time`).
# Everything generated goes to bench/out/parse/ (ignored by git).
set -eu

. "$(dirname "$0")/common.sh"
need python3 "apt-get install python3"
need cc "apt-get install gcc"
[ -x /usr/bin/time ] || { echo "bench/parse.sh: /usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
out="$root/bench/out/parse"
mkdir -p "$out"

cc -O2 -Wall "$root/bench/yamlscan.c" -lyaml -o "$out/yamlscan"

PYTHONPATH="$root/bench" python3 - "$out" "$planrun" "${RUNS:-5}" "${BIG_MB:-50}" "${FLOW:-numbers}" "${PLANRUN_BEFORE:-}" "${ONLY_10K:-}" <<'PY'
import os, random, statistics, subprocess, sys, time
out, planrun, runs, big_mb, shape = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
before, only_small = sys.argv[6], sys.argv[7] == "1"
scan = os.path.join(out, "yamlscan")

def write_plan(folder, count, sources):
    """FOLDER/plan.yaml with COUNT subtasks (deterministic) and, with
    `sources`, the input files it names."""
    rng = random.Random(20240601)
    os.makedirs(os.path.join(folder, "src"), exist_ok=True)
    lines = ["version: 1", f"name: generated-{count}", "goal: Benchmark plan parsing", "max_parallel: 8",
             "env: { LC_ALL: C }", "defaults: { retries: 0, timeout: 10m }", "subtasks:"]
    for i in range(count):
        name = f"mod-{i:06d}"
        lines += [f"  - id: task-{i:06d}", f"    description: Compile module {i:06d}",
                  f"    run: cc -O2 -c src/{name}.c -o build/{name}.o",
                  f"    inputs: [src/{name}.c, src/common.h]", f"    outputs: [build/{name}.o]"]
        if i > 0:
            window = range(max(0, i - 200), i)
            deps = sorted(rng.sample(window, min(len(window), rng.randint(0, 3))))
            if deps:
                lines.append("    depends_on: [" + ", ".join(f"task-{d:06d}" for d in deps) + "]")
    with open(os.path.join(folder, "plan.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(folder, "src", "common.h"), "w") as f:
        f.write("#define COMMON 1\n")
    for i in range(count if sources else 0):
        path = os.path.join(folder, "src", f"mod-{i:06d}.c")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(f"int mod_{i:06d}(void) {{ return {i}; }}\n")

def write_flow_list_plan(folder, megabytes, shape):
    """FOLDER/plan.yaml: two subtasks, the first with `with: {data: [...]}`,
    a flow list of integers filling about MEGABYTES: `1, 2, 3, ...` (20 to
    a line) for the shape `numbers`, `1,2,3,...,9,1,2,...` (one digit
    each, 40 to a line: the most values per byte) for `digits`."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"plan-{shape}.yaml")
    target = megabytes * 1_000_000
    if os.path.exists(path) and abs(os.path.getsize(path) - target) < 1_000_000:
        return path
    with open(path, "w") as f:
        f.write("version: 1\nname: flow-list\nsubtasks:\n  - id: load\n    run: \"true\"\n"
                "    with:\n      data: [\n")
        n, size = 1, 0
        while size < target:
            if shape == "digits":
                text = "        " + ",".join(str(1 + (n + i) % 9) for i in range(40)) + ",\n"
                n += 40
            else:
                text = "        " + ", ".join(str(n + i) for i in range(20)) + ",\n"
                n += 20
            f.write(text)
            size += len(text)
        f.write("        0]\n  - id: use\n    run: \"true\"\n    depends_on: [load]\n")
    return path

def measure(argv):
    """(wall seconds, peak RSS in MB) of one run under /usr/bin/time -f %M."""
    rss = os.path.join(out, "rss.txt")
    start = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss] + argv,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"bench/parse.sh: failed ({p.returncode}): {' '.join(argv)}\n{p.stderr.decode()[-2000:]}")
    with open(rss) as f:
        kb = int(f.read().split()[-1])
    return elapsed, kb / 1024

small = os.path.join(out, "plan-10k")
write_plan(small, 10000, True)
small_plan = os.path.join(small, "plan.yaml")
big_plan = None if only_small else write_flow_list_plan(os.path.join(out, "flow-list"), big_mb, shape)
mb = lambda p: os.path.getsize(p) / 1e6
print(f"planrun: {planrun}")
if before:
    print(f"planrun (before): {before}")
print(f"10,000 subtasks: {small_plan} ({mb(small_plan):.1f} MB)")
if big_plan:
    print(f"flow list ({shape}): {big_plan} ({mb(big_plan):.1f} MB)")

cases = [
    ("10k: scan", [scan, small_plan]),
    ("10k: validate", [planrun, "validate", small_plan]),
    ("10k: plan --format json", [planrun, "plan", "--format", "json", small_plan]),
]
if before:
    cases[2:2] = [("10k: validate (before)", [before, "validate", small_plan])]
    cases += [("10k: plan json (before)", [before, "plan", "--format", "json", small_plan])]
if big_plan:
    cases += [("flow list: scan", [scan, big_plan]), ("flow list: validate", [planrun, "validate", big_plan])]
results = {name: [] for name, _ in cases}
for r in range(runs):
    row = {}
    for name, argv in cases:
        row[name] = measure(argv)
        results[name].append(row[name])
    s, v, p = row["10k: scan"], row["10k: validate"], row["10k: plan --format json"]
    line = (f"round {r + 1}: 10k: scan {s[0]*1000:.0f} ms, validate {v[0]*1000:.0f} ms = {v[0]/s[0]:.2f}x (target <= 2x), "
            f"plan json {p[0]*1000:.0f} ms = {p[0]/s[0]:.2f}x")
    if before:
        bv, bp = row["10k: validate (before)"], row["10k: plan json (before)"]
        line += (f"; before: validate {bv[0]*1000:.0f} ms = {bv[0]/s[0]:.2f}x, plan json {bp[0]*1000:.0f} ms = {bp[0]/s[0]:.2f}x")
    if big_plan:
        fs, fv = row["flow list: scan"], row["flow list: validate"]
        line += (f"; flow list: scan {fs[0]:.2f} s {fs[1]:.0f} MB, validate {fv[0]:.2f} s {fv[1]:.0f} MB = {fv[0]/fs[0]:.2f}x "
                 f"(targets <= 2x, <= 300 MB)")
    print(line, flush=True)

def ratios(a, b):
    rs = [x[0] / y[0] for x, y in zip(results[a], results[b])]
    return f"{min(rs):.2f}-{max(rs):.2f}x per round, median {statistics.median(rs):.2f}x"
best = {name: min(t for t, _ in rows) for name, rows in results.items()}
peak = {name: max(m for _, m in rows) for name, rows in results.items()}
print(f"summary over {runs} rounds (best time; largest peak memory):")
for name, _ in cases:
    print(f"  {name:26} {best[name]*1000:8.0f} ms {peak[name]:7.0f} MB")
print(f"  10k validate / scan:          best {best['10k: validate']/best['10k: scan']:.2f}x, {ratios('10k: validate', '10k: scan')} (target <= 2x)")
print(f"  10k plan --format json / scan: best {best['10k: plan --format json']/best['10k: scan']:.2f}x, {ratios('10k: plan --format json', '10k: scan')}")
if before:
    print(f"  10k validate (before) / scan: best {best['10k: validate (before)']/best['10k: scan']:.2f}x, {ratios('10k: validate (before)', '10k: scan')}")
    print(f"  10k plan json (before) / scan: best {best['10k: plan json (before)']/best['10k: scan']:.2f}x, {ratios('10k: plan json (before)', '10k: scan')}")
    print(f"  10k validate after / before:  {ratios('10k: validate', '10k: validate (before)')}")
if not big_plan:
    sys.exit(0)
fv = peak["flow list: validate"]
print(f"  flow list validate / scan:    best {best['flow list: validate']/best['flow list: scan']:.2f}x, {ratios('flow list: validate', 'flow list: scan')} (target <= 2x)")
print(f"  flow list validate peak memory: {fv:.0f} MB, {'within' if fv <= 300 else 'OVER'} the 300 MB target")

large = os.path.join(out, "plan-100k")
write_plan(large, 100000, True)
t, m = measure([planrun, "validate", os.path.join(large, "plan.yaml")])
print(f"100,000 subtasks ({mb(os.path.join(large, 'plan.yaml')):.1f} MB): validate peak memory {m:.0f} MB, "
      f"{'within' if m <= 300 else 'OVER'} the 300 MB target ({t:.2f} s)")
PY
