#!/usr/bin/env python3
"""Write a plain-text sales report from aggregate files.
Usage: report.py OUT.txt AGGREGATE.json..."""
import json
import os
import sys


def money(cents):
    return f"{cents // 100}.{cents % 100:02d}"


def section(aggregate):
    by, totals = aggregate["by"], aggregate["totals"]
    lines = [f"By {by}", f"{by:<10} {'rows':>5} {'units':>6} {'revenue':>9}"]
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1]["revenue_cents"], kv[0]))
    for name, t in ranked:
        lines.append(f"{name:<10} {t['rows']:>5} {t['units']:>6} {money(t['revenue_cents']):>9}")
    return lines


def main(target, sources):
    aggregates = []
    for path in sources:
        with open(path, encoding="utf-8") as f:
            aggregates.append(json.load(f))
    first = aggregates[0]["totals"].values()
    revenue = sum(t["revenue_cents"] for t in first)
    units = sum(t["units"] for t in first)
    lines = ["Sales report", "", f"total units:   {units}", f"total revenue: {money(revenue)}"]
    for aggregate in aggregates:
        lines += [""] + section(aggregate)
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    with open(target, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {target}: {units} units, revenue {money(revenue)}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
