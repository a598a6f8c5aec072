from django.urls import path

from . import curation_views, episode_views, views

urlpatterns = [
    path("repositories/", views.repository_list, name="repository_list"),
    path("repositories/<int:pk>/", views.repository_detail, name="repository_detail"),
    path("repositories/<int:pk>/baseline/", views.repository_baseline, name="repository_baseline"),
    path("repositories/<int:pk>/inject/", views.repository_inject, name="repository_inject"),
    path("batches/<int:pk>/progress/", views.batch_progress, name="batch_progress"),
    path("bugs/", curation_views.bug_list, name="bug_list"),
    path("bugs/<int:pk>/", curation_views.bug_detail, name="bug_detail"),
    path("bugs/<int:pk>/progress/", views.bug_progress, name="bug_progress"),
    path("bugs/<int:pk>/validate/", views.bug_validate, name="bug_validate"),
    path("bugs/<int:pk>/rerun/", curation_views.bug_rerun, name="bug_rerun"),
    path("bugs/<int:pk>/review/", curation_views.bug_review, name="bug_review"),
    path("bugs/<int:pk>/quarantine/", curation_views.bug_quarantine, name="bug_quarantine"),
    path("bugs/<int:pk>/stable/", curation_views.bug_mark_stable, name="bug_mark_stable"),
    path("bugs/bulk/", curation_views.bug_bulk, name="bug_bulk"),
    path("bugs/bulk/apply/", curation_views.bug_bulk_apply, name="bug_bulk_apply"),
    path("bugs/<int:pk>/verifier/", curation_views.bug_edit_verifier, name="bug_edit_verifier"),
    path("flaky/", curation_views.flaky_list, name="flaky_list"),
    path("flaky/rows/", curation_views.flaky_rows, name="flaky_rows"),
    path("flaky/<int:pk>/", curation_views.flaky_detail, name="flaky_detail"),
    path("flaky/<int:pk>/live/", curation_views.flaky_live, name="flaky_live"),
    path("episodes/", episode_views.episode_list, name="episode_list"),
    path("episodes/<int:pk>/", episode_views.episode_detail, name="episode_detail"),
    path("llm-calls/<int:pk>/", episode_views.llm_call_detail, name="llm_call_detail"),
    path("sandbox/", views.sandbox_status, name="sandbox_status"),
]
