"""URLs of the deployment's views (djproject/views.py)."""
from django.urls import path

from djproject import views

urlpatterns = [
    path("export/", views.export),
    path("result/<str:task_id>/", views.result),
    path("mail/", views.mail),
]
