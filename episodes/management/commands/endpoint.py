import os
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from episodes.engine.llm.ping import ping
from episodes.models import AuditEvent, LLMEndpoint


def _or_ratio(price) -> str:
    return "provider ratio" if price is None else f"${price}"


class Command(BaseCommand):
    help = (
        "Model endpoints: add (or --update) one, list them, test a connection. The API key is read from an "
        "environment variable (--api-key-env) or stdin (--api-key-stdin), never from the command line, and "
        "never printed."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="add an endpoint (or change one with --update)")
        add.add_argument("name")
        add.add_argument("--protocol", choices=LLMEndpoint.Protocol.values)
        add.add_argument("--base-url")
        add.add_argument("--model")
        add.add_argument("--usd-per-mtok-in", type=float)
        add.add_argument("--usd-per-mtok-out", type=float)
        add.add_argument("--usd-per-mtok-cache-read", type=float,
                         help="price of prompt-cache reads (default: the provider's ratio to the input price)")
        add.add_argument("--usd-per-mtok-cache-write", type=float,
                         help="price of prompt-cache writes (default: the provider's ratio to the input price)")
        key = add.add_mutually_exclusive_group()
        key.add_argument("--api-key-env", metavar="VAR", help="read the key from this environment variable")
        key.add_argument("--api-key-stdin", action="store_true", help="read the key from the first line of stdin")
        add.add_argument("--update", action="store_true", help="change an existing endpoint (unset options are kept)")
        sub.add_parser("list", help="list endpoints (the key only as set / unset)")
        test = sub.add_parser("test", help="send a 1-token request and report the result")
        test.add_argument("name")

    def handle(self, action, **options):
        getattr(self, f"_{action}")(**options)

    def _add(self, name, protocol, base_url, model, usd_per_mtok_in, usd_per_mtok_out, api_key_env, api_key_stdin,
             update, usd_per_mtok_cache_read=None, usd_per_mtok_cache_write=None, **_):
        endpoint = LLMEndpoint.objects.filter(name=name).first()
        if endpoint and not update:
            raise CommandError(f"endpoint {name!r} exists: pass --update to change it")
        if not endpoint:
            if update:
                raise CommandError(f"no endpoint named {name!r}")
            if not (protocol and base_url and model):
                raise CommandError("a new endpoint needs --protocol, --base-url and --model")
            endpoint = LLMEndpoint(name=name)
        for field, value in (("protocol", protocol), ("base_url", base_url), ("model", model),
                             ("usd_per_mtok_in", usd_per_mtok_in), ("usd_per_mtok_out", usd_per_mtok_out),
                             ("usd_per_mtok_cache_read", usd_per_mtok_cache_read),
                             ("usd_per_mtok_cache_write", usd_per_mtok_cache_write)):
            if value is not None:
                setattr(endpoint, field, value)
        if api_key_env:
            if api_key_env not in os.environ:
                raise CommandError(f"environment variable {api_key_env} is not set")
            endpoint.api_key = os.environ[api_key_env].strip()
        elif api_key_stdin:
            endpoint.api_key = sys.stdin.readline().strip()
        try:
            endpoint.full_clean()
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        created = endpoint.pk is None
        lapsed = endpoint.key_lapses
        endpoint.save()
        if lapsed:
            self.stdout.write(self.style.WARNING(
                "the base URL or protocol changed: the stored key was cleared (give the key for the new address "
                "with --api-key-env or --api-key-stdin)"))
        AuditEvent.record(None, "add_endpoint" if created else "change_endpoint", endpoint,
                          after={"protocol": endpoint.protocol, "base_url": endpoint.base_url, "model": endpoint.model,
                                 "key": "set" if endpoint.api_key else "unset"})
        self.stdout.write(f"{'added' if created else 'updated'} endpoint {endpoint.name}: {endpoint.protocol} "
                          f"{endpoint.base_url} model {endpoint.model}, key {'set' if endpoint.api_key else 'unset'}")

    def _list(self, **_):
        rows = list(LLMEndpoint.objects.all())
        for e in rows:
            self.stdout.write(f"{e.name}\t{e.protocol}\t{e.base_url}\t{e.model}\tkey {'set' if e.api_key else 'unset'}\t"
                              f"${e.usd_per_mtok_in}/${e.usd_per_mtok_out} per Mtok, cache "
                              f"{_or_ratio(e.usd_per_mtok_cache_read)} read / {_or_ratio(e.usd_per_mtok_cache_write)} write")
        self.stdout.write(f"{len(rows)} endpoint(s)")

    def _test(self, name, **_):
        endpoint = LLMEndpoint.objects.filter(name=name).first()
        if endpoint is None:
            raise CommandError(f"no endpoint named {name!r}")
        result = ping(endpoint.protocol, endpoint.base_url, endpoint.model, endpoint.api_key)
        if result.ok:
            self.stdout.write(f"{name}: OK — HTTP {result.status_code} in {result.latency_ms:.0f} ms "
                              f"({result.tokens_in} in / {result.tokens_out} out tokens)")
        else:
            raise CommandError(f"{name}: FAILED — {result.error}")
