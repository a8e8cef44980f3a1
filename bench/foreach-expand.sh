#!/bin/sh
# foreach expansion benchmark.
#
# Generates 10,000 source files and two plans over them that mean the same:
# `foreach.yaml`, one `compile` subtask with `foreach: {glob: "src/*.c"}`
# (expanded when the plan is loaded) and a `link` that depends on the group,
# and `written.yaml`, the same 10,001 subtasks written out one by one. Each
# round runs `planrun validate` and `planrun plan --format json` on both,
# interleaved (so both see the same machine state), and the best time of
# each over the rounds counts. Prints the ratio foreach / written out,
# against a target of at most 1.2x.
#
# Usage: bench/foreach-expand.sh
#   PLANRUN=path/to/planrun  binary to measure (default: .build/release/planrun,
#                            built with `swift build -c release` if missing)
#   RUNS=5                   rounds (the best time of each command counts)
# Needs: python3. Everything generated goes to bench/out/foreach-expand/.
set -eu

. "$(dirname "$0")/common.sh"
need python3 "apt-get install python3"
runs=${RUNS:-5}
fresh_out foreach-expand

python3 - "$out" <<'EOF'
import os, sys
folder = sys.argv[1]
count = 10000
os.makedirs(os.path.join(folder, "src"), exist_ok=True)
for i in range(count):
    with open(os.path.join(folder, "src", f"mod-{i:06d}.c"), "w") as f:
        f.write(f"int mod_{i:06d}(void) {{ return {i}; }}\n")
head = [
    "version: 1",
    "vars:",
    "  cc: cc",
    "  cflags: -O2 -Wall",
    "env: { LC_ALL: C }",
    "subtasks:",
]
foreach = head + [
    "  - id: compile",
    "    description: Compile ${{ item }}",
    "    foreach: { glob: \"src/*.c\" }",
    "    run: ${{ vars.cc }} ${{ vars.cflags }} -c ${{ item }} -o build/${{ item.stem }}.o",
    "    inputs: [\"${{ item }}\"]",
    "    outputs: [\"build/${{ item.stem }}.o\"]",
    "  - id: link",
    "    depends_on: [compile]",
    "    run: ${{ vars.cc }} -o build/app build/*.o",
    "    outputs: [build/app]",
]
written = list(head)
for i in range(count):
    name = f"mod-{i:06d}"
    written += [
        f"  - id: compile-{name}",
        f"    description: Compile src/{name}.c",
        f"    run: cc -O2 -Wall -c src/{name}.c -o build/{name}.o",
        f"    inputs: [src/{name}.c]",
        f"    outputs: [build/{name}.o]",
    ]
written += [
    "  - id: link",
    "    depends_on: [" + ", ".join(f"compile-mod-{i:06d}" for i in range(count)) + "]",
    "    run: cc -o build/app build/*.o",
    "    outputs: [build/app]",
]
for name, lines in (("foreach.yaml", foreach), ("written.yaml", written)):
    with open(os.path.join(folder, name), "w") as f:
        f.write("\n".join(lines) + "\n")
EOF

# ms COMMAND...: the wall time of one run, in milliseconds; the command
# must succeed, its output is discarded.
ms() {
    start=$(date +%s%N)
    if ! "$@" >/dev/null 2>"$out/last.stderr"; then
        echo "bench/foreach-expand.sh: failed: $*" >&2
        cat "$out/last.stderr" >&2
        exit 1
    fi
    end=$(date +%s%N)
    echo $(( (end - start) / 1000000 ))
}
min() { if [ -z "$1" ] || [ "$2" -lt "$1" ]; then echo "$2"; else echo "$1"; fi; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b < 1) b = 1; printf "%.2fx", a / b }'; }
verdict() { awk -v a="$1" -v b="$2" 'BEGIN { if (b < 1) b = 1; print (a / b <= 1.2 ? "within" : "OVER") }'; }

cd "$out"
vf= vw= pf= pw=
i=0
while [ "$i" -lt "$runs" ]; do
    vf=$(min "$vf" "$(ms "$planrun" validate foreach.yaml)")
    vw=$(min "$vw" "$(ms "$planrun" validate written.yaml)")
    pf=$(min "$pf" "$(ms "$planrun" plan --format json foreach.yaml)")
    pw=$(min "$pw" "$(ms "$planrun" plan --format json written.yaml)")
    i=$((i + 1))
done
echo "10,000 files, foreach over a glob vs the same 10,001 subtasks written out"
echo "  (foreach.yaml $(wc -c <foreach.yaml) bytes, written.yaml $(wc -c <written.yaml) bytes); best of $runs interleaved rounds:"
printf '  %-28s foreach %5d ms, written out %5d ms: %s (%s the 1.2x target)\n' \
    "planrun validate" "$vf" "$vw" "$(ratio "$vf" "$vw")" "$(verdict "$vf" "$vw")"
printf '  %-28s foreach %5d ms, written out %5d ms: %s (%s the 1.2x target)\n' \
    "planrun plan --format json" "$pf" "$pw" "$(ratio "$pf" "$pw")" "$(verdict "$pf" "$pw")"
