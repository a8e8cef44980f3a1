#!/bin/sh
# Crash trial (DESIGN §9, issue 10): random `kill -9` points during builds of
# a 50-subtask plan (slow, fast, appending, folder-producing, long and
# SIGTERM-ignoring subtasks, some depending on others), each followed by a
# rebuild that is compared with a clean reference build. Each trial checks:
#   - no process of the killed build is alive a second after the kill,
#   - the rebuild succeeds and `PRAGMA integrity_check` of state.db is ok,
#   - the outputs equal the reference build's (an interrupted subtask's
#     partial output is never kept, restored or recorded),
#   - no subtask of the killed run is recorded `done` without a finished
#     attempt, and none is left `running`,
#   - no planrun temporary file is left in the plan's folder.
# Prints one line per failed check and a summary; exits 1 if any failed.
#
# Usage: tests/crash-trial.sh [TRIALS]      (default 20; 200 for the long run)
#   PLANRUN=path/to/planrun  binary (default .build/debug/planrun)
#   SEED=N                   random seed (default: time)
#   KEEP=1                   keep the work folder
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
planrun=${PLANRUN:-$root/.build/debug/planrun}
[ -x "$planrun" ] || { echo "crash-trial: $planrun is missing (swift build)" >&2; exit 2; }
exec python3 - "$planrun" "${1:-20}" "${SEED:-}" "${KEEP:-}" <<'PY'
import os, random, shutil, signal, sqlite3, subprocess, sys, tempfile, time

planrun, trials, seed, keep = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
seed = int(seed) if seed else int(time.time())
rng = random.Random(seed)

def plan_text():
    lines = ["version: 1", "name: crash-trial", "max_parallel: 6", "subtasks:"]
    def sub(id, run, outputs, inputs=(), deps=()):
        lines.append(f"  - id: {id}")
        lines.append("    run: |-")
        lines.append("      " + run)
        lines.append(f"    outputs: [{', '.join(outputs)}]")
        if inputs: lines.append(f"    inputs: [{', '.join(inputs)}]")
        if deps: lines.append(f"    depends_on: [{', '.join(deps)}]")
    # Outlive the one second after a kill unless something stops them.
    for i in range(2):
        sub(f"long-{i}", f"echo begin > out/long-{i}.txt; sleep 1.5; echo end {i} >> out/long-{i}.txt",
            [f"out/long-{i}.txt"])
    for i in range(20):
        sub(f"fast-{i}", f"cat src/in.txt > out/fast-{i}.txt; echo {i} >> out/fast-{i}.txt",
            [f"out/fast-{i}.txt"], ["src/in.txt"])
    for i in range(10):
        sub(f"slow-{i}", f"sleep 0.{2 + i % 4}; echo slow {i} > out/slow-{i}.txt", [f"out/slow-{i}.txt"])
    for i in range(7):
        sub(f"append-{i}", f"echo begin > out/append-{i}.txt; sleep 0.15; echo middle >> out/append-{i}.txt; "
            f"sleep 0.15; echo end {i} >> out/append-{i}.txt", [f"out/append-{i}.txt"])
    for i in range(6):
        sub(f"folder-{i}", f"rm -rf out/dir-{i} && mkdir -p out/dir-{i}/sub && for n in 1 2 3 4 5 6; do "
            f"echo $n {i} > out/dir-{i}/sub/f$n; sleep 0.03; done && echo ok > out/dir-{i}/done", [f"out/dir-{i}"])
    # Ignores SIGTERM (and so does its sleep): only SIGKILL stops it.
    sub("stubborn", "trap '' TERM; sleep 0.4; echo stubborn > out/stubborn.txt", ["out/stubborn.txt"])
    for i in range(4):
        deps = [f"slow-{i}", f"append-{i}", f"folder-{i}"]
        sub(f"combine-{i}", f"cat out/slow-{i}.txt out/append-{i}.txt out/dir-{i}/sub/f3 > out/combine-{i}.txt",
            [f"out/combine-{i}.txt"], [f"out/slow-{i}.txt", f"out/append-{i}.txt", f"out/dir-{i}"], deps)
    return "\n".join(lines) + "\n"

def setup(folder):
    os.makedirs(os.path.join(folder, "src"))
    os.makedirs(os.path.join(folder, "out"))
    with open(os.path.join(folder, "plan.yaml"), "w") as f: f.write(plan_text())
    with open(os.path.join(folder, "src", "in.txt"), "w") as f: f.write("input\n")

def outputs(folder):
    found = {}
    base = os.path.join(folder, "out")
    for dirpath, dirnames, filenames in os.walk(base):
        for name in filenames:
            if "planrun-tmp" in name: continue  # litter: reported by its own check
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f: found[os.path.relpath(path, folder)] = f.read()
    return found

def build(folder, *extra, env=None):
    return subprocess.run([planrun, "build", "plan.yaml", *extra], cwd=folder, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

def tagged(tag):
    """Live processes (not zombies) whose environment holds `tag`."""
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit(): continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f: env = f.read()
            if tag not in env.split(b"\0"): continue
            with open(f"/proc/{entry}/stat", "rb") as f: stat = f.read()
            if stat[stat.rindex(b")") + 2:][:1] in (b"Z", b"X"): continue
            with open(f"/proc/{entry}/cmdline", "rb") as f: cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            alive.append(f"{entry} {cmd.strip()}")
        except (OSError, ValueError):
            pass
    return alive

work = tempfile.mkdtemp(prefix="planrun-crash-trial-")
reference_dir, trial_dir = os.path.join(work, "reference"), os.path.join(work, "trial")
setup(reference_dir)
setup(trial_dir)
ref = build(reference_dir)
if ref.returncode != 0:
    print(ref.stdout.decode(errors="replace")); sys.exit("crash-trial: the reference build failed")
reference = outputs(reference_dir)

failures = []
kills, finished_first, slowest_death = 0, 0, 0.0
started = time.monotonic()
for trial in range(1, trials + 1):
    def fail(what):
        failures.append(f"trial {trial}: {what}")
        print(f"FAIL trial {trial}: {what}", flush=True)
    mode = rng.choice(["clean", "clean", "remove-some", "force", "state-only"])
    if mode == "clean":
        shutil.rmtree(os.path.join(trial_dir, ".planrun"), ignore_errors=True)
        shutil.rmtree(os.path.join(trial_dir, "out"), ignore_errors=True)
        os.makedirs(os.path.join(trial_dir, "out"))
    elif mode == "remove-some":
        for path in list(outputs(trial_dir)):
            if rng.random() < 0.4: os.remove(os.path.join(trial_dir, path))
    elif mode == "state-only":
        # Outputs stay, state goes: everything reruns over existing outputs.
        shutil.rmtree(os.path.join(trial_dir, ".planrun"), ignore_errors=True)
    if trial % 20 == 0: print(f"... {trial} trials, {len(failures)} failed checks", flush=True)
    tag = f"PLANRUN_CRASH_TRIAL={os.getpid()}-{trial}"
    env = dict(os.environ, PLANRUN_CRASH_TRIAL=tag.split("=", 1)[1], NO_COLOR="1")
    extra = ["--force"] if mode == "force" else []
    process = subprocess.Popen([planrun, "build", "plan.yaml", *extra], cwd=trial_dir, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(0, 1.4))
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        kills += 1
    else:
        killed_at = time.monotonic()
        finished_first += 1
    process.wait()
    # Every process of the killed build gone within a second.
    while True:
        alive = tagged(tag.encode())
        waited = time.monotonic() - killed_at
        if not alive: break
        if waited > 1.0:
            fail(f"{len(alive)} process(es) of the killed build alive {waited:.2f}s after the kill ({mode}): " + "; ".join(alive))
            for line in alive:
                try: os.kill(int(line.split()[0]), signal.SIGKILL)
                except OSError: pass
            break
        time.sleep(0.01)
    slowest_death = max(slowest_death, time.monotonic() - killed_at if not alive else 0)

    db_path = os.path.join(trial_dir, ".planrun", "state.db")
    killed_run = None
    if os.path.exists(db_path):
        try:
            with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
                row = db.execute("SELECT id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1").fetchone()
                killed_run = row[0] if row else None
        except sqlite3.Error:
            pass  # killed before the database had its tables
    rebuild = build(trial_dir, env=dict(os.environ, NO_COLOR="1"))
    if rebuild.returncode != 0:
        fail(f"rebuild exited {rebuild.returncode} ({mode}):\n" + rebuild.stdout.decode(errors="replace")[-2000:])
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
            check = db.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]: fail(f"integrity_check: {check}")
            if killed_run:
                for subtask, status in db.execute(
                        "SELECT subtask_id, status FROM run_subtasks WHERE run_id = ?", (killed_run,)):
                    if status in ("running", "pending"):
                        fail(f"subtask {subtask} of the killed run {killed_run} still `{status}`")
                for (subtask,) in db.execute("""
                        SELECT s.subtask_id FROM run_subtasks s WHERE s.run_id = ? AND s.status = 'done'
                        AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.run_id = s.run_id
                                        AND a.subtask_id = s.subtask_id AND a.status = 'done')""", (killed_run,)):
                    fail(f"subtask {subtask} of the killed run is `done` without a finished attempt")
    except sqlite3.Error as error:
        fail(f"state.db: {error}")
    got = outputs(trial_dir)
    if got != reference:
        diff = sorted(set(got) ^ set(reference)) + sorted(p for p in set(got) & set(reference) if got[p] != reference[p])
        fail(f"outputs differ from the reference ({mode}): " + ", ".join(
            f"{p}: {got.get(p, b'<missing>')!r} != {reference.get(p, b'<missing>')!r}" for p in diff[:5]))
    litter = []
    for dirpath, dirnames, filenames in os.walk(trial_dir):
        dirnames[:] = [d for d in dirnames if not (dirpath == trial_dir and d == ".planrun")]
        litter += [os.path.join(dirpath, n) for n in filenames + dirnames if "planrun-tmp" in n]
    if litter:
        fail("temporary files left in the plan's folder: " + ", ".join(os.path.relpath(p, trial_dir) for p in litter[:5]))
        # Removed here, so that a later trial reports only its own.
        for path in litter:
            if os.path.isdir(path) and not os.path.islink(path): shutil.rmtree(path, ignore_errors=True)
            else: os.remove(path)

elapsed = time.monotonic() - started
print(f"crash trial: {trials} trials (seed {seed}), {kills} killed mid-build, {finished_first} finished first, "
      f"slowest exit of a killed build's processes {slowest_death:.2f}s, {len(failures)} failed checks, {elapsed:.0f}s")
if keep: print(f"work folder: {work}")
else: shutil.rmtree(work, ignore_errors=True)
sys.exit(1 if failures else 0)
PY
