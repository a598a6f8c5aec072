"""Model API keys never leave: encrypted at rest, cleared when the endpoint is pointed
elsewhere, never filterable. Each attack that worked before is kept here as a test."""
import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import FieldError
from django.core.management import call_command
from django.db import connection

from episodes.models import AuditEvent, LLMEndpoint

from tests.llm.fake_upstream import FakeUpstream

pytestmark = pytest.mark.django_db
KEY = "sk-ant-real-KEY-0123456789abcdef"


@pytest.fixture
def endpoint():
    return LLMEndpoint.objects.create(name="claude", protocol="anthropic", base_url="https://api.anthropic.example",
                                      model="claude-x", api_key=KEY)


def raw_key(pk) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM episodes_llmendpoint WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_the_key_is_encrypted_at_rest(endpoint):
    stored = raw_key(endpoint.pk)
    assert stored.startswith("fernet:") and KEY not in stored
    assert LLMEndpoint.objects.get(pk=endpoint.pk).api_key == KEY  # read back in plain text


def test_pointing_the_endpoint_elsewhere_and_testing_it_sends_no_key(endpoint, staff_client):
    """The attack: a staff user sets the base URL to a listener, leaves the key blank ("kept")
    and presses Test connection. The listener must not receive the key."""
    with FakeUpstream() as listener:
        answer = staff_client.post(f"/teachers/endpoints/{endpoint.pk}/save/", {
            "name": "claude", "protocol": "anthropic", "base_url": listener.url, "model": "claude-x", "api_key": "",
            "usd_per_mtok_in": "3", "usd_per_mtok_out": "15"}, follow=True)
        assert "Its key was cleared" in answer.content.decode()
        staff_client.post(f"/teachers/endpoints/{endpoint.pk}/test/")
        seen = " ".join(str(dict(r.headers)) for r in listener.requests)
    assert KEY not in seen
    assert LLMEndpoint.objects.get(pk=endpoint.pk).api_key == ""
    audit = AuditEvent.objects.filter(action="change_endpoint").latest("id")
    assert audit.after["key"] == "cleared: the base URL or protocol changed" and KEY not in str(audit.after)


def test_a_new_address_with_its_key_keeps_that_key(endpoint):
    endpoint.base_url, endpoint.api_key = "https://proxy.example", "sk-new-key-for-the-proxy"
    endpoint.save()
    assert LLMEndpoint.objects.get(pk=endpoint.pk).api_key == "sk-new-key-for-the-proxy"
    same = LLMEndpoint.objects.get(pk=endpoint.pk)
    same.model = "claude-y"  # a change that keeps the address keeps the key
    same.save()
    assert LLMEndpoint.objects.get(pk=endpoint.pk).api_key == "sk-new-key-for-the-proxy"


def test_the_command_line_clears_the_key_too(endpoint, capsys):
    call_command("endpoint", "add", "claude", "--update", "--protocol", "openai_chat")
    assert "the stored key was cleared" in capsys.readouterr().out
    assert LLMEndpoint.objects.get(pk=endpoint.pk).api_key == ""


def test_no_filter_on_the_key_is_an_oracle(endpoint, django_user_model, client):
    """The attack: ``?api_key__startswith=`` on the admin changelist, one character at a time."""
    admin = django_user_model.objects.create_superuser("root", password="pw-root-123")
    client.force_login(admin)
    for probe in ("sk", "x", "fernet:"):
        assert client.get(f"/admin/episodes/llmendpoint/?api_key__startswith={probe}").status_code == 400
    assert client.get("/admin/episodes/llmendpoint/?api_key__regex=^sk").status_code == 400
    with pytest.raises(FieldError):
        list(LLMEndpoint.objects.filter(api_key__startswith="sk"))
    page = client.get(f"/admin/episodes/llmendpoint/{endpoint.pk}/change/").content.decode()
    assert KEY not in page and raw_key(endpoint.pk) not in page


def test_rotation_re_encrypts_with_the_new_key(endpoint, settings, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.BUGFORGE_FIELD_KEYS = [old]
    LLMEndpoint.objects.filter(pk=endpoint.pk).update(api_key=KEY)  # stored under the old key
    with_old = raw_key(endpoint.pk)
    settings.BUGFORGE_FIELD_KEYS = [new, old]  # a new key first, the old one still readable
    call_command("rotate_field_keys")
    assert "re-encrypted 1 secret(s) with the first of 2 key(s)" in capsys.readouterr().out
    settings.BUGFORGE_FIELD_KEYS = [new]  # the old key dropped
    assert raw_key(endpoint.pk) != with_old
    assert LLMEndpoint.objects.get(pk=endpoint.pk).api_key == KEY


def test_a_key_stored_in_plain_text_is_read_and_encrypted_by_rotation(endpoint):
    with connection.cursor() as cursor:  # as rows written before encryption hold it
        cursor.execute("UPDATE episodes_llmendpoint SET api_key = %s WHERE id = %s", [KEY, endpoint.pk])
    assert LLMEndpoint.objects.get(pk=endpoint.pk).api_key == KEY
    call_command("rotate_field_keys")
    assert raw_key(endpoint.pk).startswith("fernet:")
