from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from episodes.solving import episodes as solving
from episodes.models import Episode, Repository, Teacher


def _rate(value) -> str:
    return "n/a" if value is None else f"{value:.0%}"


class Command(BaseCommand):
    help = (
        "Let a teacher attempt bugs, k times each (a solve batch): queued on 'solve', or run here with "
        "--sync (progress bar). Approved bugs only unless --any-status."
    )

    def add_arguments(self, parser):
        parser.add_argument("bug_ids", nargs="*", type=int)
        parser.add_argument("--teacher", help="teacher name (see `manage.py teacher list`)")
        parser.add_argument("--cancel", type=int, metavar="BATCH", help="cancel a solve batch's queued episodes")
        parser.add_argument("--approved", action="store_true", help="every approved bug")
        parser.add_argument("--repo", help="the approved bugs of this repository")
        parser.add_argument("-k", "--attempts", type=int, default=1, help="attempts per bug (pass@k)")
        parser.add_argument("--any-status", action="store_true", help="allow named bugs that are not approved")
        parser.add_argument("--sync", action="store_true", help="run the episodes here instead of queueing them")

    def handle(self, bug_ids, teacher, approved, repo, attempts, any_status, sync, cancel, **options):
        if cancel is not None:
            from episodes.models import SolveBatch

            batch = SolveBatch.objects.filter(pk=cancel).first()
            if batch is None:
                raise CommandError(f"no solve batch {cancel}")
            self.stdout.write(f"solve batch {cancel}: {solving.cancel(batch)} queued episode(s) cancelled")
            return
        if not teacher:
            raise CommandError("--teacher is required")
        try:
            teacher_row = Teacher.objects.select_related("endpoint").get(name=teacher)
        except Teacher.DoesNotExist:
            raise CommandError(f"no teacher named {teacher!r}") from None
        repository = None
        if repo:
            repository = Repository.objects.filter(name=repo).first()
            if repository is None:
                raise CommandError(f"no repository named {repo!r}")
        if not (bug_ids or approved or repository):
            raise CommandError("name bug ids, --approved or --repo NAME")
        bugs = list(solving.select_bugs(ids=bug_ids or None, repository=repository, approved_only=not any_status))
        if bug_ids and len(bugs) != len(set(bug_ids)):
            missing = sorted(set(bug_ids) - {b.pk for b in bugs})
            raise CommandError(f"bug(s) {missing} do not exist or are not approved (--any-status to allow)")
        selection = {"ids": bug_ids, "repository": repo or "", "approved": not any_status}
        Episode.objects.sweep_stale()
        bar = tqdm(total=len(bugs) * attempts, desc="solving", unit="episode", file=self.stderr) if sync else None

        def progress(episode):
            bar.update(1)
            detail = episode.grading.get("reason") or (episode.error.splitlines() or [""])[0]
            self.stdout.write(f"episode {episode.pk} (bug {episode.bug_id}, attempt {episode.attempt}): "
                              f"{episode.status} [{episode.exit_reason}] {detail}")

        try:
            batch = solving.launch(teacher_row, bugs, attempts, selection=selection, sync=sync, progress=progress)
        except solving.SolveError as exc:
            raise CommandError(str(exc)) from None
        finally:
            if bar is not None:
                bar.close()
        if not sync:
            self.stdout.write(f"solve batch {batch.pk}: {len(bugs) * attempts} episode(s) queued on 'solve' "
                              f"({len(bugs)} bug(s) × k={attempts})")
            return
        f = solving.batch_figures(batch)
        cost = "n/a" if f["cost_per_solved_bug"] is None else f"${f['cost_per_solved_bug']:.4f}"
        self.stdout.write(
            f"solve batch {batch.pk}: solved {f['solved']}/{f['graded']} graded episodes, solve rate {_rate(f['solve_rate'])}; "
            f"failed {f['counts']['failed']}; pass@1 {_rate(f['pass_at_1'])}, pass@{attempts} {_rate(f['pass_at_k'])}; "
            f"{f['tokens']} tokens, cost per solved bug {cost}"
        )
