from django.contrib import admin

from .models import Dataset, MetricPoint, TrainingRun


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "train_rows", "heldout_rows", "created_at"]


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["name", "method", "status", "step", "max_steps", "created_at"]
    list_filter = ["status", "method"]


@admin.register(MetricPoint)
class MetricPointAdmin(admin.ModelAdmin):
    list_display = ["run", "step", "name", "value"]
    list_filter = ["name"]


from .models import Evaluation  # noqa: E402


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    list_display = ["name", "subject", "dataset", "k", "status", "created_at"]
    list_filter = ["status", "subject"]
