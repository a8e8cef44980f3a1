"""Helpers shared by the example agents.

planrun runs a `command` agent with the context JSON on standard input:
  {subtask_id, plan, plan_goal, description, dependencies: {ID: {description,
   agent, status, result}}, metadata, execution_mode, attempt, run_id}
and takes its standard output as the result: plain text, or a JSON object
{"content": ..., "metadata": {...}}. A dependent receives a dependency's result
text in `dependencies[ID].result` (its `content` when it printed an object).
"""
import json
import sys


def read_context():
    """The context JSON from standard input, as a dict."""
    try:
        context = json.load(sys.stdin)
    except json.JSONDecodeError as e:
        fail(f"standard input is not a context JSON object: {e}")
    if not isinstance(context, dict):
        fail("standard input is not a context JSON object")
    return context


def dependency_result(context, dependency_id):
    """(content, metadata) of a dependency's result.

    planrun passes the dependency's result text (the `content` of a JSON
    result). A result that is itself a JSON object, or the whole
    {"content", "metadata"} text, is accepted too."""
    dependency = (context.get("dependencies") or {}).get(dependency_id)
    if dependency is None:
        fail(f"subtask `{context.get('subtask_id')}` needs dependency `{dependency_id}` in its context")
    result = dependency.get("result")
    if isinstance(result, str):
        try:
            decoded = json.loads(result)
        except json.JSONDecodeError:
            decoded = None
        result = decoded if isinstance(decoded, dict) and "content" in decoded else result
    if isinstance(result, dict):
        return result.get("content"), result.get("metadata") or {}
    return ("" if result is None else str(result)), {}


def emit(content, **metadata):
    """Prints the result object and exits successfully."""
    json.dump({"content": content, "metadata": metadata}, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    sys.exit(0)


def fail(message):
    """Reports an agent error: planrun counts the attempt as failed."""
    print(f"{sys.argv[0]}: {message}", file=sys.stderr)
    sys.exit(1)
