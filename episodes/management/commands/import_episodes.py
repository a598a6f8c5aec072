import hashlib
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from episodes.engine.trajectories.importers import FORMATS, ImportFormatError, import_file
from episodes.engine.trajectories.canonical import check_canonical
from episodes.solving.imports import already_imported, grade_imported, store_imported, teacher_for_import
from episodes.models import Bug


# What a folder given on the command line is searched for (recursively), per format.
PATTERNS = {
    "claude_code": "*.jsonl", "codex": "rollout-*.jsonl", "mini_swe_agent": "*.traj.json", "swe_agent": "*.traj",
}


def expand(paths: list[Path], fmt: str) -> list[Path]:
    """Files as given; folders replaced by the matching files under them, in name order."""
    out: list[Path] = []
    for path in paths:
        out.extend(sorted(p for p in path.rglob(PATTERNS[fmt]) if p.is_file()) if path.is_dir() else [path])
    return out


class Command(BaseCommand):
    help = (
        "Import agent logs recorded elsewhere (Claude Code sessions, Codex rollouts, mini-swe-agent "
        ".traj.json, SWE-agent .traj) as Episodes of a teacher on a bug, in the canonical trajectory "
        "form. Without --bug, only converts and checks the files (nothing is stored). A file that fails is "
        "reported and skipped; the others are still imported."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", type=Path, help="log files, or folders to search for them")
        parser.add_argument("--format", required=True, choices=sorted(FORMATS), dest="fmt")
        parser.add_argument("--teacher", required=True, help="teacher name (created, with unknown terms, if missing)")
        parser.add_argument("--bug", type=int, help="the bug these episodes attempted; omit to only check the files")
        parser.add_argument("--again", action="store_true", help="import files already imported for this teacher and bug")
        parser.add_argument("--grade", action="store_true",
                            help="grade each submitted patch (mini-swe-agent, SWE-agent, or --patch) in the sandbox, "
                                 "as solving does")
        parser.add_argument("--patch", type=Path,
                            help="the run's final workspace diff (`git diff` in its workspace), for logs that record "
                                 "none (Claude Code sessions, Codex rollouts); one log file only")

    def handle(self, files, fmt, teacher, bug, again, grade, patch=None, **options):
        target = None
        submission = None
        if patch is not None:
            if bug is None:
                raise CommandError("--patch needs --bug: the diff is stored with the episode of that bug")
            try:
                submission = patch.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"cannot read the patch {patch}: {exc}") from None
        if grade and bug is None:
            raise CommandError("--grade needs --bug: a patch is graded against its bug")
        if bug is not None:
            target = Bug.objects.select_related("repository").filter(pk=bug).first()
            if target is None:
                raise CommandError(f"no such bug: {bug}")
        files = expand(files, fmt)
        if not files:
            raise CommandError(f"no {PATTERNS[fmt]} file in the given folder(s)")
        if submission is not None and len(files) != 1:
            raise CommandError(f"--patch is the diff of one run: give one log file, not {len(files)}")
        teacher_row = None
        failures = 0
        total = len(files)
        for i, path in enumerate(files, start=1):
            prefix = f"[{i}/{total}] {path}"
            try:
                imported = import_file(fmt, path)
            except (ImportFormatError, OSError) as exc:
                failures += 1
                self.stderr.write(f"{prefix}: {exc}")
                continue
            if submission is not None:
                imported.metadata["submission"] = submission
            problems = check_canonical(imported.trajectory)
            messages = len(imported.trajectory["messages"])
            note = f"; {len(problems)} problem(s): {'; '.join(problems[:3])}" if problems else ""
            if target is None:
                self.stdout.write(f"{prefix}: {messages} messages, {imported.metadata.get('steps', 0)} steps (not stored){note}")
                continue
            if teacher_row is None:
                teacher_row, created = teacher_for_import(teacher, fmt, imported.metadata.get("model", ""))
                if created:
                    self.stdout.write(f"created teacher {teacher_row.name} ({teacher_row.get_harness_display()})")
                if teacher_row.terms_allow_training is not True:
                    self.stdout.write(self.style.WARNING(
                        f"teacher {teacher_row.name}: terms allow training use is "
                        f"{'unknown' if teacher_row.terms_allow_training is None else 'no'} — exports will warn"))
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            earlier = None if again else already_imported(digest, bug=target, teacher=teacher_row)
            if earlier is not None:
                self.stdout.write(f"{prefix}: already imported as episode {earlier.pk} (skipped; --again to import it again)")
                continue
            episode = store_imported(imported, bug=target, teacher=teacher_row, fmt=fmt, source=str(path), digest=digest)
            self.stdout.write(f"{prefix}: episode {episode.pk} ({episode.status}, {messages} messages){note}")
            if grade:
                if not episode.final_patch.strip():
                    self.stdout.write(f"{prefix}: no submitted patch to grade")
                    continue
                episode = grade_imported(episode)
                self.stdout.write(f"{prefix}: reward {bool(episode.reward)} — {episode.grading.get('reason', '')}")
        done = total - failures
        self.stdout.write(f"summary: {done} of {total} file(s) {'imported' if target else 'converted'}, {failures} failed")
        if failures:
            raise CommandError(f"{failures} of {total} file(s) could not be imported (see above)")
