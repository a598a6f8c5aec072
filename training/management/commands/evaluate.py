from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from training import evaluations
from training.engine.eval_maths import headline
from training.models import Dataset, Evaluation, TrainingRun


class Command(BaseCommand):
    help = ("Evaluate a model as the built-in agent on a dataset's held-out bugs (pass@1, pass@k with intervals); "
            "--compare prints the student / teacher / base table for the dataset.")

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--run", type=int, help="a training run: its final model (or --base: its base model)")
        parser.add_argument("--model", help="a model directory (checkpoint or base)")
        parser.add_argument("--base", action="store_true", help="the subject is a base model")
        parser.add_argument("--teacher", help="a teacher: its endpoint (or --episodes: its existing episodes)")
        parser.add_argument("--episodes", action="store_true", help="count the teacher's existing episodes")
        parser.add_argument("-k", type=int, default=1, help="attempts per bug")
        parser.add_argument("--max-steps", type=int, default=10, help="agent steps per attempt")
        parser.add_argument("--name")
        parser.add_argument("--enqueue", action="store_true", help="queue instead of running here")
        parser.add_argument("--compare", action="store_true", help="only print the comparison table")

    def handle(self, dataset, run, model, base, teacher, episodes, k, max_steps, name, enqueue, compare, **o):
        from episodes.models import Teacher

        try:
            ds = Dataset.objects.get(name=dataset)
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset named {dataset}")
        if compare:
            return self._table(ds)
        ev = Evaluation(dataset=ds, k=k, options={"max_steps": max_steps})
        if teacher:
            ev.teacher = Teacher.objects.filter(name=teacher).first()
            if ev.teacher is None:
                raise CommandError(f"no teacher named {teacher}")
            ev.subject = Evaluation.Subject.EPISODES if episodes else Evaluation.Subject.TEACHER
        else:
            ev.subject = Evaluation.Subject.BASE if base else Evaluation.Subject.CHECKPOINT
            if run:
                ev.run = TrainingRun.objects.filter(pk=run).first()
                if ev.run is None:
                    raise CommandError(f"no training run {run}")
            ev.model_path = model or ""
            if not (model or run):
                raise CommandError("name --run, --model or --teacher")
        ev.name = name or f"{ev.get_subject_display()} on {ds.name}"
        try:
            evaluations.validate(ev)
        except ValueError as exc:
            raise CommandError(str(exc))
        if enqueue:
            evaluations.start_evaluation(ev)
            self.stdout.write(f"evaluation {ev.pk} queued")
            return
        ev.save()
        bar = tqdm(total=len(ds.heldout_bug_ids) * k, desc="attempts", unit="attempt", file=self.stderr)
        try:
            evaluations.run_evaluation(ev.pk)
        except Exception as exc:
            raise CommandError(f"evaluation failed: {exc}")
        finally:
            ev.refresh_from_db()
            bar.n = ev.progress.get("done", bar.n)
            bar.close()
        top = headline(ev.results.get("overall", {}), [1])
        lo, hi = top["pass1_ci"] or [0, 1]
        self.stdout.write(f"evaluation {ev.pk}: pass@1 {top['pass1'] or 0:.3f} (95% CI {lo:.3f}–{hi:.3f}) "
                          f"over {top['bugs'] or 0} bugs, {top['attempts'] or 0} attempts")
        self._table(ds)

    def _table(self, ds):
        rows = evaluations.comparison(ds)
        if not rows:
            self.stdout.write("no finished evaluation on this dataset yet")
            return
        self.stdout.write(f"{'role':8} {'name':40} {'bugs':>5} {'pass@1':>7} {'95% CI':>15} {'pass@k':>7}")
        for r in rows:
            ci = r["pass1_ci"] or [0, 1]
            p1 = r["pass1"] if r["pass1"] is not None else float("nan")
            pk = r["passk"] if r["k"] > 1 else r["pass1"]
            pk = pk if pk is not None else float("nan")
            self.stdout.write(f"{r['role']:8} {r['name'][:40]:40} {r['bugs'] or 0:>5} {p1:7.3f} "
                              f"{ci[0]:6.3f}–{ci[1]:6.3f} {pk:7.3f} (k={r['k']})")
