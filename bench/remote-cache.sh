#!/bin/sh
# Remote cache benchmark (issue 5 item 6).
#
# COUNT independent file subtasks (`cp in/I.txt out/I.txt`), default
# settings. A build in one folder warms a real nginx (WebDAV PUT) on a free
# loopback port. Then RUNS rounds, each running, one after the other:
#   - the peer: a local no-op rebuild of that folder (stat cache warm, no
#     remote) with --json, so every subtask's key and outputs are checked,
#   - the same no-op as users run it (answered from the up-to-date stamp),
#   - a build of a fresh copy (plan and inputs only: no .planrun/, no
#     outputs) against the warm remote, which must run nothing and end with
#     identical outputs (checked).
# Prints the best-of-RUNS wall time of each, the ratio of the bests and the
# median of the per-round ratios (target: fresh <= 3x the --json no-op),
# the CPU time (user + system) of the best runs, the median CPU per
# subtask (user and system apart) and the HTTP requests a fresh build
# makes.
#
# Usage: bench/remote-cache.sh
#   PLANRUN=path  binary to measure (default: .build/release/planrun, built
#                 with the README's command; see common.sh)
#   COUNT=2000    number of subtasks;  RUNS=5  rounds (best counts)
#   PLANRUN_BEFORE=path  another binary (e.g. the main branch's) measured
#                 in the same rounds, right after PLANRUN: its --json no-op
#                 and fresh copy, and its ratio, printed last
# Needs: python3, nginx (apt-get install -y nginx). Files go to
# bench/out/remote-cache/.
set -eu
. "$(dirname "$0")/common.sh"
nginx=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
[ -n "$nginx" ] || { echo "bench/remote-cache.sh: nginx is missing (apt-get install -y nginx)" >&2; exit 1; }
fresh_out remote-cache

before=${PLANRUN_BEFORE:-}
if [ -n "$before" ]; then
    case "$before" in /*) ;; *) before="$(pwd)/$before" ;; esac
    [ -x "$before" ] || { echo "bench/remote-cache.sh: PLANRUN_BEFORE=$before is not an executable" >&2; exit 1; }
fi

python3 - "$planrun" "$nginx" "$out" "${COUNT:-2000}" "${RUNS:-5}" "$before" <<'PY'
import json, os, shutil, signal, socket, subprocess, sys, time
planrun, nginx, out, count, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
before = sys.argv[6] or None
jobs = str(os.cpu_count() or 2)

# nginx on a free loopback port, one process, everything under out/nginx.
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
ng = os.path.join(out, "nginx"); os.makedirs(os.path.join(ng, "root")); os.makedirs(os.path.join(ng, "tmp"))
with open(os.path.join(ng, "nginx.conf"), "w") as f:
    f.write(f"""daemon off; master_process off; worker_processes 1;
pid {ng}/nginx.pid; error_log {ng}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log {ng}/access.log; client_body_temp_path {ng}/tmp; proxy_temp_path {ng}/tmp;
  fastcgi_temp_path {ng}/tmp; uwsgi_temp_path {ng}/tmp; scgi_temp_path {ng}/tmp;
  server {{ listen 127.0.0.1:{port}; root {ng}/root;
    location / {{ dav_methods PUT; create_full_put_path on; client_max_body_size 0; }} }} }}
""")
server = subprocess.Popen([nginx, "-e", f"{ng}/error.log", "-p", ng, "-c", f"{ng}/nginx.conf"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
url = f"http://127.0.0.1:{port}"
try:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close(); break
        except OSError:
            time.sleep(0.02)

    source = os.path.join(out, "source")
    os.makedirs(os.path.join(source, "in"))
    with open(os.path.join(source, "plan.yaml"), "w") as f:
        f.write("version: 1\nname: remote\nsubtasks:\n")
        for i in range(count):
            f.write(f"  - id: t{i}\n    run: mkdir -p out && cp in/{i}.txt out/{i}.txt\n    inputs: [in/{i}.txt]\n    outputs: [out/{i}.txt]\n")
    for i in range(count):
        with open(os.path.join(source, "in", f"{i}.txt"), "w") as f:
            f.write(f"input {i}\n")

    cpu, split = {}, {}
    def per_subtask(times):
        # Median user and system CPU of these runs, in microseconds per
        # subtask: steadier than wall time on a shared machine, where
        # other processes' file creation and deletion stall ext4.
        users = sorted(split[t][0] for t in times); systems = sorted(split[t][1] for t in times)
        return f"median cpu per subtask {users[len(users) // 2] / count * 1e6:.0f} us user + {systems[len(systems) // 2] / count * 1e6:.0f} us system"
    def build(folder, *extra, binary=planrun):
        was = os.times()
        start = time.perf_counter()
        p = subprocess.run([binary, "build", "plan.yaml", "--json", "-j", jobs, *extra], cwd=folder,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PLANRUN_REMOTE_CACHE": ""})
        elapsed = time.perf_counter() - start
        now = os.times()
        cpu[elapsed] = (now.children_user - was.children_user) + (now.children_system - was.children_system)
        split[elapsed] = (now.children_user - was.children_user, now.children_system - was.children_system)
        if p.returncode != 0:
            sys.exit(f"planrun failed ({p.returncode}): {p.stderr.decode()[-2000:]}")
        if b"warning" in p.stderr:
            sys.exit(f"planrun warned: {p.stderr.decode()[-2000:]}")
        return elapsed, json.loads(p.stdout)

    full, _ = build(source, "--remote-cache", url)
    stored = sum(len(files) for _, _, files in os.walk(os.path.join(ng, "root")))
    time.sleep(2.5)   # outputs older than planrun's racy-timestamp window
    build(source)     # warm-up no-op (fills the stat cache)
    def fresh_build(r, binary=planrun):
        clone = os.path.join(out, f"clone-{r}" if binary == planrun else f"clone-before-{r}")
        os.makedirs(clone)
        shutil.copy(os.path.join(source, "plan.yaml"), clone)
        shutil.copytree(os.path.join(source, "in"), os.path.join(clone, "in"))
        open(os.path.join(ng, "access.log"), "w").close()
        t, summary = build(clone, "--remote-cache", url, binary=binary)
        with open(os.path.join(ng, "access.log")) as log:
            requests.add(sum(1 for _ in log))
        assert summary["completed"] == 0 and summary["cached"] == count, {k: summary[k] for k in ("completed", "cached", "total")}
        for i in range(count):
            with open(os.path.join(clone, "out", f"{i}.txt"), "rb") as a, open(os.path.join(source, "out", f"{i}.txt"), "rb") as b:
                assert a.read() == b.read(), i
        return t

    # One round: the peer (the --json no-op), the stamp no-op, the fresh
    # clone; the stamp no-op is answered from the stamp the --json no-ops
    # write.
    noop, stamp, fresh, requests = [], [], [], set()
    noop_before, fresh_before = [], []
    for r in range(runs):
        t, summary = build(source)
        assert summary["completed"] == 0 and summary["cached"] == count, summary
        noop.append(t)
        start = time.perf_counter()
        p = subprocess.run([planrun, "build", "plan.yaml", "-j", jobs], cwd=source, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env={**os.environ, "PLANRUN_REMOTE_CACHE": ""})
        stamp.append(time.perf_counter() - start)
        assert p.returncode == 0 and b"no work to do" in p.stdout, p.stdout[-500:]
        fresh.append(fresh_build(r))
        if before:
            t, summary = build(source, binary=before)
            assert summary["completed"] == 0 and summary["cached"] == count, summary
            noop_before.append(t)
            fresh_before.append(fresh_build(r, binary=before))
    rounds = sorted(f / n for f, n in zip(fresh, noop))

    print(f"remote cache: {count} file subtasks, -j {jobs}, nginx WebDAV on loopback, best of {runs}")
    print(f"  full build, warming the remote ({stored} files stored)  {full:8.3f} s")
    print(f"  local no-op rebuild (--json: every subtask checked) {min(noop):8.3f} s   (runs: {' '.join(f'{t:.3f}' for t in noop)}; cpu of the best {cpu[min(noop)]:.3f} s)")
    print(f"  local no-op rebuild (up-to-date stamp)   {min(stamp):8.3f} s   (runs: {' '.join(f'{t:.3f}' for t in stamp)})")
    print(f"  fresh copy against the warm remote       {min(fresh):8.3f} s   (runs: {' '.join(f'{t:.3f}' for t in fresh)}; cpu of the best {cpu[min(fresh)]:.3f} s; {'/'.join(map(str, sorted(requests)))} requests each)")
    print(f"ratio fresh-from-remote / local no-op      {min(fresh) / min(noop):.1f}x   (every subtask checked; per round: median {rounds[len(rounds) // 2]:.1f}x, {' '.join(f'{x:.1f}' for x in rounds)})   target <= 3x")
    print(f"ratio fresh-from-remote / stamp no-op      {min(fresh) / min(stamp):.1f}x")
    print(f"  --json no-op: {per_subtask(noop)};  fresh copy: {per_subtask(fresh)}")
    if before:
        rounds_before = sorted(f / n for f, n in zip(fresh_before, noop_before))
        print(f"PLANRUN_BEFORE {before}, same rounds:")
        print(f"  local no-op rebuild (--json: every subtask checked) {min(noop_before):8.3f} s   (runs: {' '.join(f'{t:.3f}' for t in noop_before)}; cpu of the best {cpu[min(noop_before)]:.3f} s)")
        print(f"  fresh copy against the warm remote       {min(fresh_before):8.3f} s   (runs: {' '.join(f'{t:.3f}' for t in fresh_before)}; cpu of the best {cpu[min(fresh_before)]:.3f} s)")
        print(f"  ratio fresh-from-remote / local no-op    {min(fresh_before) / min(noop_before):.1f}x   (per round: median {rounds_before[len(rounds_before) // 2]:.1f}x, {' '.join(f'{x:.1f}' for x in rounds_before)})")
        print(f"  --json no-op: {per_subtask(noop_before)};  fresh copy: {per_subtask(fresh_before)}")
    for r in range(runs):  # removed at the end: mass deletion makes ext4 slow to create files for a while
        shutil.rmtree(os.path.join(out, f"clone-{r}"))
        if before:
            shutil.rmtree(os.path.join(out, f"clone-before-{r}"))
finally:
    server.kill()
    server.wait()
PY
