from django.urls import path

from . import views

urlpatterns = [
    path("", views.run_list, name="training_run_list"),
    path("runs/<int:pk>/", views.run_detail, name="training_run_detail"),
]
