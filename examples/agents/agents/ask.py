#!/usr/bin/env python3
"""ask agent: answers the question in `with: {question}` from the results of
its dependencies `implement` and `debug`, and writes the answer to the file
`with: {answer_file}`."""
import os
import re

from common import dependency_result, emit, fail, read_context

context = read_context()
meta = context.get("metadata") or {}
question, answer_file = meta.get("question"), meta.get("answer_file")
if not (question and answer_file):
    fail("`with:` needs `question` and `answer_file`")
if os.path.isabs(answer_file) or ".." in answer_file.split("/"):
    fail(f"answer file `{answer_file}` must be a path inside the plan's folder")

code, _ = dependency_result(context, "implement")
checks, _ = dependency_result(context, "debug")
summary = re.search(r"(\d+) passed, (\d+) failed", checks)
if summary is None:
    fail("the result of `debug` has no `N passed, M failed` summary")
passed, failed = int(summary.group(1)), int(summary.group(2))
ready = failed == 0 and passed > 0
answer = [
    f"# {question}",
    "",
    f"**{'yes' if ready else 'no'}**: {code}; {passed} checks passed, {failed} failed.",
]
answer += [f"- failing: {line[2:]}" for line in checks.splitlines() if line.startswith("- ")]
os.makedirs(os.path.dirname(answer_file) or ".", exist_ok=True)
with open(answer_file, "w", encoding="utf-8") as f:
    f.write("\n".join(answer) + "\n")
emit("\n".join(answer), ready=ready, passed=passed, failed=failed)
