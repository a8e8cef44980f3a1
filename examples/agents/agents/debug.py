#!/usr/bin/env python3
"""debug agent: reads the output of the test subtask named in
`with: {tests_from}` and explains any failing check. Its result says how many
checks passed and failed (`N passed, M failed`) and lists the failures."""
import re

from common import dependency_result, emit, fail, read_context

context = read_context()
source = (context.get("metadata") or {}).get("tests_from")
if not source:
    fail("`with:` needs `tests_from`: the id of the test subtask")
output, _ = dependency_result(context, source)

summary = re.search(r"(\d+) passed, (\d+) failed", output)
if summary is None:
    fail(f"the output of `{source}` has no `N passed, M failed` summary")
passed, failed = int(summary.group(1)), int(summary.group(2))
failures = [line[len("FAIL "):] for line in output.splitlines() if line.startswith("FAIL ")]
# The summary stays in the content: dependents receive the content as result.
content = f"`{source}`: {passed} passed, {failed} failed"
if failed == 0:
    content += "; nothing to debug"
else:
    content += "\n" + "\n".join(f"- {f}" for f in failures)
emit(content, passed=passed, failed=failed, failures=failures)
