from django.contrib import admin

from episodes.admin import RecordAdmin

from training.models import Dataset, MetricPoint, TrainingRun


@admin.register(Dataset)
class DatasetAdmin(RecordAdmin):
    list_display = ["name", "kind", "train_rows", "heldout_rows", "created_at"]


@admin.register(TrainingRun)
class TrainingRunAdmin(RecordAdmin):
    list_display = ["name", "method", "status", "step", "max_steps", "created_at"]
    list_filter = ["status", "method"]


@admin.register(MetricPoint)
class MetricPointAdmin(RecordAdmin):
    list_display = ["run", "step", "name", "value"]
    list_filter = ["name"]


from training.models import Evaluation  # noqa: E402


@admin.register(Evaluation)
class EvaluationAdmin(RecordAdmin):
    list_display = ["name", "subject", "dataset", "k", "status", "created_at"]
    list_filter = ["status", "subject"]
