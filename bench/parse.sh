#!/bin/sh
# Parse benchmark.
#
# 1. Generates a 10,000-subtask plan (inputs, outputs, up to three
#    dependencies among the previous 200 subtasks; about 2 MB) and prints the
#    best-of-5 wall time of `planrun validate` and `planrun plan --format json`
#    next to a raw libyaml event scan of the same file (bench/yamlscan.c), as
#    ratios.
# 2. Generates a 100,000-subtask plan and prints the peak memory (maximum
#    resident set size) of `planrun validate`, against a 300 MB target.
#
# Usage: bench/parse.sh
#   PLANRUN=path/to/planrun  binary to measure (default: .build/release/planrun,
#                            built with `swift build -c release` if missing)
#   RUNS=5                   runs per measurement (the best one counts)
# Needs: cc, libyaml-dev, python3, /usr/bin/time (Debian package `time`).
# Everything generated goes to bench/out/ (ignored by git).
set -eu

. "$(dirname "$0")/common.sh"
out="$root/bench/out"
runs=${RUNS:-5}
mkdir -p "$out"
[ -x /usr/bin/time ] || { echo "bench/parse.sh: /usr/bin/time is missing (apt-get install time)" >&2; exit 1; }

cc -O2 -Wall "$root/bench/yamlscan.c" -lyaml -o "$out/yamlscan"

# generate N FOLDER [sources]: writes FOLDER/plan.yaml with N subtasks and,
# with `sources`, the input files it names (`plan` may read them; `validate`
# does not). Deterministic (fixed seed).
generate() {
    python3 - "$@" <<'EOF'
import os, random, sys
count, folder = int(sys.argv[1]), sys.argv[2]
sources = sys.argv[3:] == ["sources"]
rng = random.Random(20240601)
os.makedirs(os.path.join(folder, "src"), exist_ok=True)
lines = [
    "version: 1",
    f"name: generated-{count}",
    "goal: Benchmark plan parsing",
    "max_parallel: 8",
    "env: { LC_ALL: C }",
    "defaults: { retries: 0, timeout: 10m }",
    "subtasks:",
]
for i in range(count):
    name = f"mod-{i:06d}"
    lines += [
        f"  - id: task-{i:06d}",
        f"    description: Compile module {i:06d}",
        f"    run: cc -O2 -c src/{name}.c -o build/{name}.o",
        f"    inputs: [src/{name}.c, src/common.h]",
        f"    outputs: [build/{name}.o]",
    ]
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
EOF
}

# best_ms COMMAND...: the fastest of $runs wall times, in milliseconds.
# The command must succeed; its output is discarded.
best_ms() {
    best=
    i=0
    while [ "$i" -lt "$runs" ]; do
        start=$(date +%s%N)
        if ! "$@" >/dev/null 2>"$out/last.stderr"; then
            echo "bench/parse.sh: failed: $*" >&2
            cat "$out/last.stderr" >&2
            exit 1
        fi
        end=$(date +%s%N)
        ms=$(( (end - start) / 1000000 ))
        if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
        i=$((i + 1))
    done
    echo "$best"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b < 1) b = 1; printf "%.1fx", a / b }'; }

small="$out/plan-10k"
generate 10000 "$small" sources
size=$(wc -c <"$small/plan.yaml")
echo "10,000 subtasks: $small/plan.yaml ($(awk -v s="$size" 'BEGIN { printf "%.1f MB", s / 1048576 }'))"
echo "best of $runs runs, wall time:"

scan=$(best_ms "$out/yamlscan" "$small/plan.yaml")
validate=$(best_ms "$planrun" validate "$small/plan.yaml")
plan=$(best_ms "$planrun" plan --format json "$small/plan.yaml")
printf '  %-32s %6d ms\n' "libyaml event scan (C)" "$scan"
printf '  %-32s %6d ms  %s the scan\n' "planrun validate" "$validate" "$(ratio "$validate" "$scan")"
printf '  %-32s %6d ms  %s the scan\n' "planrun plan --format json" "$plan" "$(ratio "$plan" "$scan")"

large="$out/plan-100k"
generate 100000 "$large"
size=$(wc -c <"$large/plan.yaml")
echo "100,000 subtasks: $large/plan.yaml ($(awk -v s="$size" 'BEGIN { printf "%.1f MB", s / 1048576 }'))"
/usr/bin/time -v "$planrun" validate "$large/plan.yaml" >/dev/null 2>"$out/time-100k.txt" || {
    echo "bench/parse.sh: planrun validate failed on the 100,000-subtask plan:" >&2
    cat "$out/time-100k.txt" >&2
    exit 1
}
kb=$(awk -F: '/Maximum resident set size/ { gsub(/ /, "", $2); print $2 }' "$out/time-100k.txt")
seconds=$(awk -F': ' '/Elapsed \(wall clock\) time/ { print $2 }' "$out/time-100k.txt")
mb=$(awk -v k="$kb" 'BEGIN { printf "%.0f", k / 1024 }')
verdict=$( [ "$mb" -le 300 ] && echo "within the 300 MB target" || echo "OVER the 300 MB target" )
printf '  %-32s %6d MB  %s (wall %s)\n' "planrun validate peak memory" "$mb" "$verdict" "$seconds"
