import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create (or reset the password of) a staff superuser; prints the password."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--email", default="admin@localhost")
        parser.add_argument("--password", help="default: a random one, printed")
        parser.add_argument("--keep-existing", action="store_true", help="leave an existing user untouched")

    def handle(self, username, email, password, keep_existing, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(username=username, defaults={"email": email})
        if not created and keep_existing:
            self.stdout.write(f"Staff user {username!r} exists; password unchanged.")
            return
        password = password or secrets.token_urlsafe(12)
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        self.stdout.write(self.style.SUCCESS(f"Staff user {username!r} {'created' if created else 'updated'}; password: {password}"))
