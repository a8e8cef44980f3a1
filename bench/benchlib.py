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
