"""Celery tasks for cablecar's tests (internal/jobstest/celery.go).

Broker and result backend are both the Redis at CELERY_REDIS_URL. The
result backend keeps the extended metadata (task name, args, queue,
retries) and records STARTED, which the job watcher reports.
"""
import os

from celery import Celery

url = os.environ["CELERY_REDIS_URL"]
app = Celery("celery_tasks", broker=url, backend=url)
app.conf.update(
    result_extended=True,
    task_track_started=True,
    broker_connection_retry_on_startup=True,
)


@app.task(name="tasks.add")
def add(x, y):
    return x + y


@app.task(name="tasks.explode")
def explode(message):
    raise ValueError(message)


@app.task(bind=True, name="tasks.flaky", max_retries=1)
def flaky(self, message):
    # The first run asks for a retry; the second exceeds max_retries, so
    # retry raises the exception and the task fails with it.
    raise self.retry(exc=RuntimeError(message), countdown=0)


@app.task(bind=True, name="tasks.steps")
def steps(self, n):
    for i in range(1, n + 1):
        self.update_state(state="PROGRESS", meta={"done": i, "of": n})
    return n
