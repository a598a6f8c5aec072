from django.core.management.base import BaseCommand, CommandError

from training.tiny import make_tiny_model, tiny_model_path


class Command(BaseCommand):
    help = ("Build a tiny random-initialized causal LM (Qwen2 architecture, byte-level BPE tokenizer, TRL's "
            "qwen3 chat template) for tests, CI and the CPU demo. No download.")

    def add_arguments(self, parser):
        parser.add_argument("dir", nargs="?", help=f"where to save it (default {tiny_model_path()})")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, dir, seed, **options):
        try:
            path = make_tiny_model(dir or tiny_model_path(), seed=seed)
        except (ValueError, RuntimeError) as exc:
            raise CommandError(str(exc))
        self.stdout.write(str(path))
