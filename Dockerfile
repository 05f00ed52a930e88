# guild-sync: the bot image. Built by docker-compose.yml (service `bot`); see docs/operator-guide.md.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Runtime dependencies only (no [test]/[dev] extras), read from pyproject.toml in their own layer
# so editing the code does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY guild_sync ./guild_sync
COPY bot ./bot
RUN pip install --no-deps .

# A fixed numeric uid, so orchestrators can verify "not root" without reading /etc/passwd.
RUN groupadd --system --gid 10001 guildsync \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin guildsync \
    && mkdir -p /app/data \
    && chown guildsync:guildsync /app/data

USER 10001:10001

# The SQLite run journal (SYNC_STATE_URL=sqlite:///data/sync-state.sqlite3, relative to /app)
# must outlive the container: its breaker is what stops a failing start-up sync from repeating
# at every restart.
VOLUME ["/app/data"]

# asyncio.run turns SIGINT into a clean shutdown (the bot closes its session and releases its
# journal lock); SIGTERM would be ignored by Python running as PID 1 until the SIGKILL.
STOPSIGNAL SIGINT

CMD ["python", "-m", "bot", "run"]
