from django.urls import path

from episodes import views

from episodes.curation import views as curation_views

from episodes.solving import episode_views

from episodes.injection import statement_views

from episodes.solving import teacher_views
from episodes.injection import selfplay_views
urlpatterns = [
    path("repositories/", views.repository_list, name="repository_list"),
    path("repositories/new/", views.repository_new, name="repository_new"),
    path("repositories/add/", views.repository_add, name="repository_add"),
    path("repositories/<int:pk>/", views.repository_detail, name="repository_detail"),
    path("repositories/<int:pk>/progress/", views.repository_progress, name="repository_progress"),
    path("repositories/<int:pk>/prepare/", views.repository_prepare, name="repository_prepare"),
    path("repositories/<int:pk>/repin/", views.repository_repin, name="repository_repin"),
    path("repositories/<int:pk>/archive/", views.repository_archive, name="repository_archive"),
    path("repositories/<int:pk>/baseline/", views.repository_baseline, name="repository_baseline"),
    path("repositories/<int:pk>/inject/", views.repository_inject, name="repository_inject"),
    path("batches/<int:pk>/progress/", views.batch_progress, name="batch_progress"),
    path("bugs/", curation_views.bug_list, name="bug_list"),
    path("bugs/<int:pk>/", curation_views.bug_detail, name="bug_detail"),
    path("bugs/<int:pk>/progress/", views.bug_progress, name="bug_progress"),
    path("bugs/<int:pk>/validate/", views.bug_validate, name="bug_validate"),
    path("bugs/<int:pk>/rerun/", curation_views.bug_rerun, name="bug_rerun"),
    path("bugs/<int:pk>/review/", curation_views.bug_review, name="bug_review"),
    path("bugs/<int:pk>/statement/", statement_views.bug_statement_rewrite, name="bug_statement_rewrite"),
    path("bugs/<int:pk>/quarantine/", curation_views.bug_quarantine, name="bug_quarantine"),
    path("bugs/<int:pk>/stable/", curation_views.bug_mark_stable, name="bug_mark_stable"),
    path("bugs/<int:pk>/stabilize/", curation_views.bug_stabilize, name="bug_stabilize"),
    path("bugs/stabilize/", curation_views.bugs_stabilize, name="bugs_stabilize"),
    path("bugs/<int:pk>/status-cell/", views.bug_status_cell, name="bug_status_cell"),
    path("bugs/bulk/", curation_views.bug_bulk, name="bug_bulk"),
    path("bugs/bulk/apply/", curation_views.bug_bulk_apply, name="bug_bulk_apply"),
    path("audit/<int:pk>/undo/", curation_views.audit_undo, name="audit_undo"),
    path("bugs/<int:pk>/verifier/", curation_views.bug_edit_verifier, name="bug_edit_verifier"),
    path("flaky/", curation_views.flaky_list, name="flaky_list"),
    path("flaky/rows/", curation_views.flaky_rows, name="flaky_rows"),
    path("flaky/<int:pk>/", curation_views.flaky_detail, name="flaky_detail"),
    path("flaky/<int:pk>/live/", curation_views.flaky_live, name="flaky_live"),
    path("episodes/", episode_views.episode_list, name="episode_list"),
    path("episodes/<int:pk>/", episode_views.episode_detail, name="episode_detail"),
    path("episodes/<int:pk>/review/", episode_views.episode_review, name="episode_review"),
    path("episodes/<int:pk>/session-log/", episode_views.episode_session_log, name="episode_session_log"),
    path("llm-calls/<int:pk>/", episode_views.llm_call_detail, name="llm_call_detail"),
    path("sandbox/", views.sandbox_status, name="sandbox_status"),
    path("teachers/", teacher_views.teacher_list, name="teacher_list"),
    path("teachers/add/", teacher_views.teacher_add, name="teacher_add"),
    path("teachers/<int:pk>/", teacher_views.teacher_detail, name="teacher_detail"),
    path("teachers/<int:pk>/save/", teacher_views.teacher_save, name="teacher_save"),
    path("teachers/endpoints/add/", teacher_views.endpoint_add, name="endpoint_add"),
    path("teachers/endpoints/<int:pk>/", teacher_views.endpoint_edit, name="endpoint_edit"),
    path("teachers/endpoints/<int:pk>/save/", teacher_views.endpoint_save, name="endpoint_save"),
    path("teachers/endpoints/<int:pk>/test/", teacher_views.endpoint_test, name="endpoint_test"),
    path("teachers/solve/", teacher_views.solve_launch, name="solve_launch"),
    path("teachers/batches/<int:pk>/", teacher_views.solve_batch_detail, name="solve_batch_detail"),
    path("teachers/batches/<int:pk>/progress/", teacher_views.solve_batch_progress, name="solve_batch_progress"),
    path("teachers/batches/<int:pk>/cancel/", teacher_views.solve_batch_cancel, name="solve_batch_cancel"),
    path("selfplay/", selfplay_views.selfplay_list, name="selfplay_list"),
    path("selfplay/start/", selfplay_views.selfplay_start, name="selfplay_start"),
    path("selfplay/<int:pk>/", selfplay_views.selfplay_detail, name="selfplay_detail"),
    path("selfplay/<int:pk>/progress/", selfplay_views.selfplay_progress, name="selfplay_progress"),
    path("selfplay/<int:pk>/cancel/", selfplay_views.selfplay_cancel, name="selfplay_cancel"),
]
