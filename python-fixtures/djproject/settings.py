"""Django settings for the fixture project.

Only what the Celery side needs: the Redis broker coordinates (read from the
environment, with the defaults real deployments write) and a throw-away
sqlite database so `django.setup()` works without any service.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "rcelery-fixtures-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
    }
}
USE_TZ = True
TIME_ZONE = "Asia/Shanghai"

# Broker coordinates, as deployments spell them (strings).
REDIS_MQ_HOST = os.environ.get("REDIS_MQ_HOST", "localhost")
REDIS_MQ_PORT = os.environ.get("REDIS_MQ_PORT", "6379")
REDIS_MQ_PASSWORD = os.environ.get("REDIS_MQ_PASSWORD", "123456")
REDIS_MQ_DB = os.environ.get("REDIS_MQ_DB", "3")
