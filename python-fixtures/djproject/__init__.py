"""Minimal Django project hosting the `tasks` app, as in the deployments rcelery serves."""
