"""The episode page's integrity review, from the command line (audited as the named staff user).

    manage.py review_episode --held                       # episodes held for review
    manage.py review_episode 42 --as alice --clear        # a genuine fix: the reward stands
    manage.py review_episode 42 --as alice --refuse --notes "reads PYTEST_CURRENT_TEST"
"""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from episodes.models import Episode


class Command(BaseCommand):
    help = "Clear or refuse an episode graded past the reward's static screen (BUGFORGE_SUSPICIOUS_EPISODES=review)."

    def add_arguments(self, parser):
        parser.add_argument("episode_id", type=int, nargs="?")
        parser.add_argument("--held", action="store_true", help="list the episodes held for review")
        parser.add_argument("--as", dest="username", help="the staff user acting")
        decision = parser.add_mutually_exclusive_group()
        decision.add_argument("--clear", action="store_true")
        decision.add_argument("--refuse", action="store_true")
        parser.add_argument("--notes", default="")

    def handle(self, *args, **opts):
        if opts["held"]:
            for ep in Episode.objects.filter(grading__needs_review=True).select_related("teacher").order_by("id"):
                first = (ep.grading.get("suspicious") or [{}])[0]
                self.stdout.write(f"{ep.pk}\t{ep.teacher.name}\tbug {ep.bug_id}\treward {ep.reward}\t"
                                  f"{first.get('path', '')}:{first.get('line', '')} {first.get('rule', '')}")
            return
        if opts["episode_id"] is None or not (opts["clear"] or opts["refuse"]) or not opts["username"]:
            raise CommandError("give an episode id, --as USER and --clear or --refuse (or --held to list)")
        user = get_user_model().objects.filter(username=opts["username"], is_staff=True).first()
        if user is None:
            raise CommandError(f"no staff user named {opts['username']}")
        episode = Episode.objects.filter(pk=opts["episode_id"]).first()
        if episode is None:
            raise CommandError(f"no episode {opts['episode_id']}")
        try:
            episode.review_integrity(user, "clear" if opts["clear"] else "refuse", opts["notes"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"episode {episode.pk}: integrity {episode.integrity or 'trusted'}, reward {episode.reward}")
