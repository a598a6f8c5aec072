"""The admin is for looking at data the system computes, not for typing it in: no add or
change for repositories, bugs, episodes, verdicts, runs and the audit trail."""
import pytest

from episodes.models import Bug, Repository

pytestmark = pytest.mark.django_db
COMPUTED = ["episodes/repository", "episodes/bug", "episodes/episode", "episodes/llmcall", "episodes/verificationrun",
            "episodes/injectionbatch", "episodes/review", "episodes/auditevent", "training/dataset",
            "training/trainingrun", "training/metricpoint", "training/evaluation"]


@pytest.fixture
def root(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-root-123"))
    return client


@pytest.mark.parametrize("model", COMPUTED)
def test_computed_data_cannot_be_added_in_the_admin(root, model):
    assert root.get(f"/admin/{model}/add/").status_code == 403
    assert root.get(f"/admin/{model}/").status_code == 200  # but it can be looked at


def test_a_bug_cannot_be_forged_approved_through_the_admin(root):
    repo = Repository.objects.create(name="r", source="/x", pinned_commit="a" * 40)
    bug = Bug.objects.create(repository=repo, base_commit="a" * 40, patch="p", verifier="v", status="valid")
    page = root.get(f"/admin/episodes/bug/{bug.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()  # view only
    forged = root.post(f"/admin/episodes/bug/{bug.pk}/change/", {"status": "approved", "flake_upper_bound": "0"})
    assert forged.status_code == 403
    created = root.post("/admin/episodes/bug/add/", {"repository": repo.pk, "status": "approved", "patch": "p"})
    assert created.status_code == 403
    bug.refresh_from_db()
    assert bug.status == "valid" and Bug.objects.count() == 1
