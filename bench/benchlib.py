"""Helpers shared by the benchmark scripts under bench/ (they put this
folder on PYTHONPATH)."""
import subprocess
import sys
import time


def timed(argv, cwd, name=None):
    """Wall time of one run of `argv` in `cwd`, output discarded; exits the
    benchmark with the tool's standard error when it fails."""
    start = time.perf_counter()
    p = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"{name or argv[0]} failed ({p.returncode}): {p.stderr.decode()[-2000:]}")
    return elapsed


def make_inputs(folder, count):
    """`folder/in/I.txt` holding "input I" for I below `count`, and an empty
    `folder/out/`: the starting tree of the file-subtask benchmarks."""
    import os
    os.makedirs(os.path.join(folder, "in"))
    os.makedirs(os.path.join(folder, "out"))
    for i in range(count):
        with open(os.path.join(folder, "in", f"{i}.txt"), "w") as f:
            f.write(f"input {i}\n")


def timed_cpu(argv, cwd, name=None):
    """Like `timed`, and also the CPU time (user + system) the run took,
    from the child's resource usage: (wall, cpu). On a loaded machine the
    wall time mostly says how long the tool waited for a core; the CPU
    time does not."""
    import os
    start = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"{name or argv[0]} failed ({p.returncode})")
    return elapsed, usage.ru_utime + usage.ru_stime
