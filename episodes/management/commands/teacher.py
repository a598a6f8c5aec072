from django.core.management.base import BaseCommand, CommandError

from episodes.solving import episodes as solving
from episodes.engine.solve.agent.loop import AgentLimits
from episodes.models import AuditEvent, LLMEndpoint, Teacher

TERMS = {"yes": True, "no": False, "unknown": None}


def terms_text(value) -> str:
    return {True: "allows training", False: "forbids training", None: "training use unknown"}[value]


class Command(BaseCommand):
    help = "Teachers (a harness driving a model, with provenance): add one, list them with their figures."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="add a teacher")
        add.add_argument("name")
        add.add_argument("--endpoint", required=True, help="endpoint name (see `manage.py endpoint list`)")
        add.add_argument("--harness", choices=[h for h in Teacher.Harness.values if h != "imported"], default="builtin")
        add.add_argument("--provider", default="")
        add.add_argument("--model", default="", help="model name recorded as provenance (default: the endpoint's)")
        add.add_argument("--terms-allow-training", choices=TERMS, default="unknown",
                         help="whether the provider's terms allow training on its outputs (provenance flag)")
        for name, default in vars(AgentLimits()).items():
            if name != "retries":
                add.add_argument(f"--{name.replace('_', '-')}", type=float if "usd" in name or "wall" in name else int,
                                 default=None, help=f"default {default}")
        change = sub.add_parser("set", help="change a teacher's provenance or limits")
        change.add_argument("name")
        change.add_argument("--provider")
        change.add_argument("--model")
        change.add_argument("--terms-allow-training", choices=TERMS)
        for name in vars(AgentLimits()):
            if name != "retries":
                change.add_argument(f"--{name.replace('_', '-')}", type=float if "usd" in name or "wall" in name else int)
        sub.add_parser("list", help="list teachers with episodes, solve rate, tokens and cost per solved bug")

    def handle(self, action, **options):
        getattr(self, f"_{action}")(**options)

    def _add(self, name, endpoint, harness, provider, model, terms_allow_training, **options):
        if Teacher.objects.filter(name=name).exists():
            raise CommandError(f"teacher {name!r} exists")
        endpoint_row = LLMEndpoint.objects.filter(name=endpoint).first()
        if endpoint_row is None:
            raise CommandError(f"no endpoint named {endpoint!r}")
        config = {k: options[k] for k in vars(AgentLimits()) if options.get(k) is not None}
        teacher = Teacher(name=name, endpoint=endpoint_row, harness=harness, provider=provider,
                          model=model or endpoint_row.model, terms_allow_training=TERMS[terms_allow_training],
                          config=config)
        problem = solving.teacher_problem(teacher)
        if problem:
            raise CommandError(problem)
        teacher.full_clean()
        teacher.save()
        AuditEvent.record(None, "add_teacher", teacher, after={"harness": harness, "endpoint": endpoint,
                                                              "terms_allow_training": teacher.terms_allow_training})
        self.stdout.write(f"added teacher {name}: {teacher.get_harness_display()} on {endpoint_row.name} "
                          f"({teacher.model}), {terms_text(teacher.terms_allow_training)}, limits {config or 'default'}")

    def _set(self, name, provider, model, terms_allow_training, **options):
        teacher = Teacher.objects.filter(name=name).first()
        if teacher is None:
            raise CommandError(f"no teacher named {name!r}")
        before = {"provider": teacher.provider, "model": teacher.model,
                  "terms_allow_training": teacher.terms_allow_training, "config": dict(teacher.config)}
        if provider is not None:
            teacher.provider = provider
        if model is not None:
            teacher.model = model
        if terms_allow_training is not None:
            teacher.terms_allow_training = TERMS[terms_allow_training]
        teacher.config = {**teacher.config, **{k: options[k] for k in vars(AgentLimits()) if options.get(k) is not None}}
        teacher.save()
        after = {"provider": teacher.provider, "model": teacher.model,
                 "terms_allow_training": teacher.terms_allow_training, "config": teacher.config}
        AuditEvent.record(None, "change_teacher", teacher, before=before, after=after)
        self.stdout.write(f"teacher {name}: {terms_text(teacher.terms_allow_training)}, model {teacher.model}, "
                          f"limits {teacher.config or 'default'}")

    def _list(self, **_):
        teachers = list(Teacher.objects.select_related("endpoint"))
        for t in teachers:
            f = solving.teacher_figures(t)
            rate = "n/a" if f["solve_rate"] is None else f"{f['solve_rate']:.0%}"
            cost = "n/a" if f["cost_per_solved_bug"] is None else f"${f['cost_per_solved_bug']:.4f}"
            self.stdout.write(
                f"{t.name}\t{t.harness}\t{t.endpoint.name if t.endpoint else '-'}\t{t.model}\t"
                f"{terms_text(t.terms_allow_training)}\t{f['episodes']} episodes, solve rate {rate}, "
                f"{f['tokens']} tokens, cost per solved bug {cost}"
            )
        self.stdout.write(f"{len(teachers)} teacher(s)")
