#!/bin/sh
# Makespan of a 200-subtask layered DAG with mixed sleeps (10-200 ms):
# planrun's eager scheduling against barrier batches (the dry-run batches of
# `planrun plan --format json`, each run in parallel with a wait at every
# batch boundary, as the original design did) and against the lower bound
# max(critical path, total work / jobs). Prints the ratios measured in this
# run; targets: eager within 1.05x of the bound, and faster than batches.
# Like ninja with its build log, planrun orders ready subtasks by their
# critical path once a run has recorded durations, so the eager runs are
# measured after one warm-up build; the first, history-less run is printed
# too. Two plans of the same graph: with default settings (the cache on;
# every subtask reads `round.txt`, which changes before each build, so all
# of them run and are recorded each time) and with `cache: false` (nothing
# recorded).
#
# Usage: bench/run-makespan.sh
#   PLANRUN=path/to/planrun  binary (default .build/release/planrun, built if missing)
#   RUNS=3  JOBS=8  LAYERS=10  WIDTH=20  SEED=7
# Needs: python3.
set -eu

. "$(dirname "$0")/common.sh"
fresh_out makespan

python3 - "$out" "$planrun" "${RUNS:-3}" "${JOBS:-8}" "${LAYERS:-10}" "${WIDTH:-20}" "${SEED:-7}" <<'PY'
import json, os, random, shutil, subprocess, sys, time
out, planrun = sys.argv[1], sys.argv[2]
runs, jobs, layers, width, seed = (int(x) for x in sys.argv[3:8])
rng = random.Random(seed)

# Layer L has `width` subtasks; each depends on 1-3 subtasks of layer L-1.
tasks = []  # (id, sleep_ms, deps)
for layer in range(layers):
    for k in range(width):
        deps = [] if layer == 0 else sorted(rng.sample(range(width), rng.randint(1, 3)))
        tasks.append((f"l{layer}_{k}", rng.randint(10, 200), [f"l{layer-1}_{d}" for d in deps]))
sleep = {t: ms for t, ms, _ in tasks}
for name, extra in (("plan.yaml", "    inputs: [round.txt]\n"), ("uncached.yaml", "    cache: false\n")):
    with open(os.path.join(out, name), "w") as f:
        f.write("version: 1\nname: makespan\nsubtasks:\n")
        for t, ms, deps in tasks:
            f.write(f"  - id: {t}\n    run: sleep {ms / 1000:.3f}\n{extra}")
            if deps:
                f.write(f"    depends_on: [{', '.join(deps)}]\n")
rounds = 0

# Lower bound: max(critical path, total work / jobs).
finish = {}
for t, ms, deps in tasks:
    finish[t] = ms + max((finish[d] for d in deps), default=0)
critical = max(finish.values()) / 1000
work = sum(sleep.values()) / 1000
bound = max(critical, work / jobs)

def eager(plan="plan.yaml"):
    global rounds
    rounds += 1
    with open(os.path.join(out, "round.txt"), "w") as f:
        f.write(f"{rounds}\n")
    start = time.perf_counter()
    r = subprocess.run([planrun, "build", plan, "-j", str(jobs)], cwd=out,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        sys.exit("planrun build failed: " + r.stderr.decode()[-2000:])
    return time.perf_counter() - start

preview = json.loads(subprocess.run([planrun, "plan", "plan.yaml", "--format", "json", "-j", str(jobs)], cwd=out,
                                    check=True, capture_output=True).stdout)
batches = [[entry["id"] for entry in batch] for batch in preview["batches"]]

def barrier():
    # The same commands, as real processes: each batch starts together and
    # the next one waits for the slowest.
    start = time.perf_counter()
    for batch in batches:
        procs = [subprocess.Popen(["/bin/sh", "-c", f"sleep {sleep[t] / 1000:.3f}"]) for t in batch]
        for p in procs:
            p.wait()
    return time.perf_counter() - start

shutil.rmtree(os.path.join(out, ".planrun"), ignore_errors=True)
first = eager()
eagers, uncached, barriers = [], [], []
for _ in range(runs):  # interleaved, so that all three see the same load
    eagers.append(eager())
    uncached.append(eager("uncached.yaml"))
    barriers.append(barrier())
e, u, b = min(eagers), min(uncached), min(barriers)
print(f"{len(tasks)} subtasks in {layers} layers, sleeps 10-200 ms, -j {jobs}, best of {runs}:")
print(f"  lower bound     {bound:7.3f} s  (critical path {critical:.3f} s, work / jobs {work / jobs:.3f} s)")
print(f"  first run       {first:7.3f} s  = {first / bound:.3f}x bound (no recorded durations: plan order)")
print(f"  planrun eager   {e:7.3f} s  = {e / bound:.3f}x bound, default settings (target <= 1.05x: {'met' if e / bound <= 1.05 else 'NOT met'})")
print(f"  planrun eager   {u:7.3f} s  = {u / bound:.3f}x bound, cache: false")
print(f"  barrier batches {b:7.3f} s  = {b / bound:.3f}x bound ({len(batches)} batches)")
print(f"  eager / batches = {e / b:.3f}x ({'faster' if e < b else 'NOT faster'})")
PY
