#!/usr/bin/env python3
"""ask agent: answers the question in `with: {question}` from the results of
its dependencies, and writes the answer to the file `with: {answer_file}`."""
import os

from common import dependency_result, emit, fail, read_context

context = read_context()
meta = context.get("metadata") or {}
question, answer_file = meta.get("question"), meta.get("answer_file")
if not (question and answer_file):
    fail("`with:` needs `question` and `answer_file`")

_, code = dependency_result(context, "implement")
_, checks = dependency_result(context, "debug")
ready = checks.get("failed") == 0 and checks.get("passed", 0) > 0
verdict = "yes" if ready else "no"
answer = [
    f"# {question}",
    "",
    f"**{verdict}**: `{code.get('function')}` is in `{code.get('module')}` "
    f"({code.get('lines')} lines); {checks.get('passed', 0)} checks passed, "
    f"{checks.get('failed', 0)} failed.",
]
for failure in checks.get("failures", []):
    answer.append(f"- failing: {failure}")
os.makedirs(os.path.dirname(answer_file) or ".", exist_ok=True)
with open(answer_file, "w", encoding="utf-8") as f:
    f.write("\n".join(answer) + "\n")
emit("\n".join(answer), ready=ready)
