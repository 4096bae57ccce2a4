"""Sends Celery tasks for cablecar's tests: each line on stdin is
{"task": name, "args": [...]} and is answered on stdout by {"id": task_id}
(or {"error": ...}), in order. Prints "ready" first."""
import json
import sys

from celery_tasks import app

print("ready", flush=True)
for line in sys.stdin:
    if not line.strip():
        continue
    try:
        req = json.loads(line)
        result = app.send_task(req["task"], args=req.get("args") or [])
        reply = {"id": result.id}
    except Exception as exc:  # the test prints it
        reply = {"error": repr(exc)}
    print(json.dumps(reply), flush=True)
