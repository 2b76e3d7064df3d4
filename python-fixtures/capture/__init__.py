"""Golden capture: real Celery producer and worker messages/results written to golden/."""
