"""The deployment's views calling the tasks (plain Django views, the same code whichever
worker, Python Celery or rcelery, runs the tasks).

* `GET /export/?email=a@b.c`: `export_users.delay(email)`, answers the task id at once;
* `GET /result/<id>/`: whether that task is ready and, when it is, its result;
* `GET /mail/?email=a@b.c`: `send_mail.delay(addr)`, then waits for the result.
"""
from django.http import JsonResponse

from tasks.async_tasks import export_users, send_mail


def export(request):
    """Start the export of the users table for the requester `email`."""
    email = request.GET.get("email", "test@test.com")
    ret = export_users.delay(email)
    return JsonResponse({"id": ret.id})


def result(request, task_id):
    """The state of a task started by another view: ready or not, and its result."""
    ret = export_users.AsyncResult(task_id)
    if not ret.ready():
        return JsonResponse({"id": ret.id, "ready": False})
    return JsonResponse({"id": ret.id, "ready": True, "result": ret.get(timeout=10)})


def mail(request):
    """Send a mail to `email` and answer with the task's result."""
    addr = request.GET["email"]
    ret = send_mail.delay(addr)
    print(ret.ready())
    print(ret.id)
    value = ret.get(timeout=60)
    return JsonResponse({"id": ret.id, "result": value}, json_dumps_params={"ensure_ascii": False})
