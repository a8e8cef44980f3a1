#!/usr/bin/env python3
"""Clean raw sales rows: trim and normalise names, drop blank, malformed,
negative and duplicate rows. Usage: clean.py IN.csv OUT.csv"""
import csv
import datetime
import os
import sys

FIELDS = ["date", "region", "product", "units", "unit_price"]


def clean_row(row):
    """The cleaned row, or the reason it is dropped."""
    if not any((v or "").strip() for v in row.values()):
        return None, "blank"
    try:
        date = datetime.date.fromisoformat(row["date"].strip()).isoformat()
    except ValueError:
        return None, "bad date"
    region = row["region"].strip().capitalize()
    product = row["product"].strip().lower()
    try:
        units = int(row["units"].strip())
        price = float(row["unit_price"].strip())
    except (ValueError, AttributeError):
        return None, "bad number"
    if not region or not product:
        return None, "missing name"
    if units < 0 or price < 0:
        return None, "negative"
    return {"date": date, "region": region, "product": product,
            "units": str(units), "unit_price": f"{price:.2f}"}, None


def main(source, target):
    kept, dropped, seen = [], {}, set()
    with open(source, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            cleaned, reason = clean_row(row)
            if cleaned is not None:
                key = tuple(cleaned[k] for k in FIELDS)
                if key in seen:
                    cleaned, reason = None, "duplicate"
                else:
                    seen.add(key)
            if cleaned is None:
                dropped[reason] = dropped.get(reason, 0) + 1
            else:
                kept.append(cleaned)
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    with open(target, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
    reasons = ", ".join(f"{n} {r}" for r, n in sorted(dropped.items()))
    print(f"kept {len(kept)} rows, dropped {sum(dropped.values())} ({reasons or 'none'})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
