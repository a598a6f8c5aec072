from django.urls import path

from training import views

urlpatterns = [
    path("", views.run_list, name="training_run_list"),
    path("compare/", views.run_compare, name="training_run_compare"),
    path("runs/new/", views.run_new, name="training_run_new"),
    path("runs/launch/", views.run_launch, name="training_run_launch"),
    path("runs/<int:pk>/", views.run_detail, name="training_run_detail"),
    path("runs/<int:pk>/metrics.json", views.run_metrics, name="training_run_metrics"),
    path("runs/<int:pk>/row/", views.run_row, name="training_run_row"),
    path("runs/<int:pk>/status/", views.run_status, name="training_run_status"),
    path("runs/<int:pk>/log/", views.run_log, name="training_run_log"),
    path("runs/<int:pk>/cancel/", views.run_cancel, name="training_run_cancel"),
    path("datasets/", views.dataset_list, name="training_dataset_list"),
    path("datasets/build/", views.dataset_build, name="training_dataset_build"),
    path("datasets/<int:pk>/", views.dataset_detail, name="training_dataset_detail"),
    path("evaluations/", views.evaluation_list, name="training_evaluation_list"),
    path("evaluations/start/", views.evaluation_start, name="training_evaluation_start"),
    path("evaluations/<int:pk>/row/", views.evaluation_row, name="training_evaluation_row"),
]
