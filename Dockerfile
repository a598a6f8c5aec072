# syntax=docker/dockerfile:1
# BugForge: one image for every role (web, migrate, CPU workers, GPU trainer); docker-compose.yml
# picks the role through `command`. The default command is the web server.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# git: workers mirror and check out the registered repositories.
# bubblewrap: the local sandbox backend (BUGFORGE_SANDBOX=local).
# python3 + python3-venv: Debian's /usr/bin/python3 (3.11 on bookworm). Both sandbox backends
#   build verifier environments from /usr/bin/python3, while this base image's own Python lives
#   in /usr/local (first on PATH, so `python` below is still the base image's interpreter).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        git bubblewrap python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# The web process runs as this unprivileged user. The CPU workers run as root (compose sets
# `user: "0:0"`) because the local sandbox drops each run to uid 65534 with setresuid().
RUN groupadd --system --gid 10001 bugforge \
    && useradd --system --uid 10001 --gid bugforge --home-dir /home/bugforge --create-home \
        --shell /usr/sbin/nologin bugforge

WORKDIR /app

# Dependencies first (pinned), so code changes do not reinstall them.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY . .

# Static files are collected at build time with the production storage (hashed, compressed
# names for whitenoise). The key is a throwaway that exists only during this RUN step.
RUN DEBUG=false \
    SECRET_KEY=build-time-only-collectstatic-key-not-used-at-runtime-000000 \
    BUGFORGE_VAR_DIR=/tmp/bugforge-build-var \
    python manage.py collectstatic --noinput \
    && rm -rf /tmp/bugforge-build-var \
    && mkdir -p /app/var /var/lib/bugforge/work \
    && chown bugforge:bugforge /app/var /var/lib/bugforge/work \
    && chmod 0755 /var/lib/bugforge /var/lib/bugforge/work

# Sandbox workspaces and environments; every ancestor must be searchable by the sandbox uid.
ENV BUGFORGE_WORK_DIR=/var/lib/bugforge/work \
    WEB_CONCURRENCY=3

USER bugforge
EXPOSE 8000

# gunicorn reads its worker count from WEB_CONCURRENCY (set above; override per deployment).
CMD ["gunicorn", "bugforge_web.wsgi:application", "--bind", "0.0.0.0:8000", \
     "--access-logfile", "-", "--timeout", "120"]
