"""Celery tasks package of the fixture project (`celery -A tasks.task worker ...`)."""
