"""Django settings for the fixture project.

What the Celery side needs: the Redis broker coordinates (read from the environment, with the
defaults real deployments write), the apps a deployment installs (django-celery-results,
django-celery-beat, and `users`, the model `export_users` reads), and a database: a throw-away
sqlite file by default, so `django.setup()` works without any service, or the server the
environment names (`DJANGO_DB_ENGINE=postgresql` with `DJANGO_DB_NAME`, `DJANGO_DB_HOST`,
`DJANGO_DB_PORT`, `DJANGO_DB_USER`, `DJANGO_DB_PASSWORD`), as the deployment's PostgreSQL.
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
    "django_celery_results",
    "django_celery_beat",
    "users",
]
_ENGINE = os.environ.get("DJANGO_DB_ENGINE", "sqlite3")
if _ENGINE == "sqlite3":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DJANGO_SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
        }
    }
else:
    if _ENGINE == "mysql":
        # Django's MySQL backend on PyMySQL (the pinned pure-Python driver) instead of
        # mysqlclient.
        import pymysql
        pymysql.install_as_MySQLdb()
    DATABASES = {
        "default": {
            "ENGINE": f"django.db.backends.{_ENGINE}",
            "NAME": os.environ.get("DJANGO_DB_NAME", "celery_test_2"),
            "HOST": os.environ.get("DJANGO_DB_HOST", "127.0.0.1"),
            "PORT": os.environ.get("DJANGO_DB_PORT", "5432"),
            "USER": os.environ.get("DJANGO_DB_USER", "postgres"),
            "PASSWORD": os.environ.get("DJANGO_DB_PASSWORD", ""),
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
ROOT_URLCONF = "djproject.urls"
USE_TZ = True
TIME_ZONE = "Asia/Shanghai"

# Broker coordinates, as deployments spell them (strings).
REDIS_MQ_HOST = os.environ.get("REDIS_MQ_HOST", "localhost")
REDIS_MQ_PORT = os.environ.get("REDIS_MQ_PORT", "6379")
REDIS_MQ_PASSWORD = os.environ.get("REDIS_MQ_PASSWORD", "123456")
REDIS_MQ_DB = os.environ.get("REDIS_MQ_DB", "3")
