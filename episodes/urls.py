from django.urls import path

from . import views

urlpatterns = [
    path("repositories/", views.repository_list, name="repository_list"),
    path("repositories/<int:pk>/", views.repository_detail, name="repository_detail"),
    path("repositories/<int:pk>/baseline/", views.repository_baseline, name="repository_baseline"),
    path("repositories/<int:pk>/inject/", views.repository_inject, name="repository_inject"),
    path("batches/<int:pk>/progress/", views.batch_progress, name="batch_progress"),
    path("bugs/", views.bug_list, name="bug_list"),
    path("bugs/<int:pk>/", views.bug_detail, name="bug_detail"),
    path("bugs/<int:pk>/progress/", views.bug_progress, name="bug_progress"),
    path("bugs/<int:pk>/validate/", views.bug_validate, name="bug_validate"),
    path("bugs/<int:pk>/rerun/", views.bug_rerun, name="bug_rerun"),
    path("bugs/<int:pk>/review/", views.bug_review, name="bug_review"),
    path("bugs/<int:pk>/quarantine/", views.bug_quarantine, name="bug_quarantine"),
    path("bugs/<int:pk>/stable/", views.bug_mark_stable, name="bug_mark_stable"),
    path("flaky/", views.flaky_list, name="flaky_list"),
    path("episodes/", views.episode_list, name="episode_list"),
    path("sandbox/", views.sandbox_status, name="sandbox_status"),
]
