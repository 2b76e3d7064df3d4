"""The `Users` model of the deployment (`export_users` writes its rows to a CSV file)."""
from django.db import models


class Users(models.Model):
    """A registered user: the columns the deployment's export writes."""

    username = models.CharField(max_length=150, unique=True)
    email = models.CharField(max_length=254)
    date_joined = models.DateTimeField()

    class Meta:
        db_table = "users"
        ordering = ["id"]
