from django.core.management.base import BaseCommand
from django.db import transaction

from bugforge_web.encryption import field_keys
from episodes.models import AuditEvent, LLMEndpoint


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (model API keys) with the first of BUGFORGE_FIELD_KEYS. Rotation: put a "
        "new key first in BUGFORGE_FIELD_KEYS, run this, then drop the old key. Keys stored before encryption "
        "are encrypted too."
    )

    def handle(self, **options):
        done = 0
        with transaction.atomic():
            for endpoint in (e for e in LLMEndpoint.objects.all() if e.api_key):
                # read back decrypted (with any of the keys), written encrypted with the first
                LLMEndpoint.objects.filter(pk=endpoint.pk).update(api_key=endpoint.api_key)
                AuditEvent.record(None, "rotate_field_key", endpoint, after={"keys": len(field_keys())})
                done += 1
        self.stdout.write(f"re-encrypted {done} secret(s) with the first of {len(field_keys())} key(s)")
