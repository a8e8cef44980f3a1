#!/usr/bin/env python3
"""Checks `slugify` in the module given as argument. Prints one line per check
and a `N passed, M failed` summary; exits 1 when any check fails."""
import importlib.util
import sys

CASES = [
    ("Hello, World!", "hello-world"),
    ("  many   spaces  ", "many-spaces"),
    ("Ünïcödé text", "unicode-text"),
    ("a--b__c", "a-b-c"),
    ("already-a-slug", "already-a-slug"),
    ("", ""),
]

spec = importlib.util.spec_from_file_location("textlib", sys.argv[1])
textlib = importlib.util.module_from_spec(spec)
spec.loader.exec_module(textlib)

failed = 0
for text, expected in CASES:
    got = textlib.slugify(text)
    if got == expected:
        print(f"ok   slugify({text!r}) == {expected!r}")
    else:
        failed += 1
        print(f"FAIL slugify({text!r}) returned {got!r}, expected {expected!r}")
print(f"{len(CASES) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
