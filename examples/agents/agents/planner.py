#!/usr/bin/env python3
"""planner agent: turns the plan's goal and the subtask's `with:` metadata into
an ordered list of steps for the other agents. Deterministic: the same context
always gives the same plan."""
from common import emit, fail, read_context

context = read_context()
meta = context.get("metadata") or {}
feature = meta.get("feature")
module = meta.get("module")
tests = meta.get("tests")
if not (feature and module and tests):
    fail("`with:` needs `feature`, `module` and `tests`")

steps = [
    {"agent": "coder", "action": f"write `{feature}` into {module}"},
    {"agent": "shell", "action": f"run {tests} against {module}"},
    {"agent": "debug", "action": "explain any failing check"},
    {"agent": "ask", "action": "answer whether the feature is ready"},
]
lines = [f"Plan for: {context.get('plan_goal') or feature}"]
lines += [f"{i}. [{s['agent']}] {s['action']}" for i, s in enumerate(steps, 1)]
emit("\n".join(lines), feature=feature, module=module, steps=steps)
