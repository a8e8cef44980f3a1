#!/usr/bin/env python3
"""Total units and revenue of clean sales rows, grouped by one column.
Usage: aggregate.py COLUMN OUT.json CLEAN.csv..."""
import csv
import json
import os
import sys


def main(column, target, sources):
    totals = {}
    for source in sources:
        with open(source, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                entry = totals.setdefault(row[column], {"rows": 0, "units": 0, "revenue_cents": 0})
                units = int(row["units"])
                entry["rows"] += 1
                entry["units"] += units
                entry["revenue_cents"] += units * round(float(row["unit_price"]) * 100)
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    with open(target, "w", encoding="utf-8") as f:
        json.dump({"by": column, "totals": totals}, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"{len(totals)} groups by {column}")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
