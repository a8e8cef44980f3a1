#!/usr/bin/env python3
"""Check plan files against schema/plan.schema.json.

Usage: tests/schema_check.py [--schema SCHEMA] FILE...

Prints one line per file, `ok FILE` or `invalid FILE: PATH: MESSAGE` (one line
per error), and exits 0 when every file is valid, 1 when any is not, 2 on a
usage problem. Needs the `jsonschema` and `PyYAML` modules.
"""
import argparse
import json
import pathlib
import sys

try:
    import jsonschema
    import yaml
except ImportError as e:  # pragma: no cover
    print(f"schema_check: missing Python module: {e.name} (pip install jsonschema PyYAML)", file=sys.stderr)
    sys.exit(2)

ROOT = pathlib.Path(__file__).resolve().parent.parent


def error_path(error):
    return "/" + "/".join(str(p) for p in error.absolute_path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", default=str(ROOT / "schema" / "plan.schema.json"))
    parser.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args()

    schema = json.loads(pathlib.Path(args.schema).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)

    failed = 0
    for name in args.files:
        try:
            with open(name, encoding="utf-8") as f:
                document = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as e:
            print(f"invalid {name}: cannot read: {' '.join(str(e).split())}")
            failed += 1
            continue
        errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
        if errors:
            failed += 1
            for e in errors:
                print(f"invalid {name}: {error_path(e)}: {e.message}")
        else:
            print(f"ok {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
