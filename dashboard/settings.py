"""Wattwise settings. Everything comes from environment variables (listed in .env.example).

With nothing set, the app runs with no services: SQLite in the repository and Celery tasks executed
in-process. Set DATABASE_URL and CELERY_BROKER_URL to run on PostgreSQL and Redis with real workers.
"""

from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from dashboard.env import env_bool, env_float, env_int, env_list, env_str
from dashboard.web.security import STRICT_POLICY

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", True)
_DEV_SECRET = "wattwise-dev-only-secret-key-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY") or (_DEV_SECRET if DEBUG else None)
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
# DEBUG answers 404s with the app's page too; 1 brings back Django's technical 404 (every URL pattern).
WATTWISE_TECHNICAL_404 = env_bool("WATTWISE_TECHNICAL_404", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",
    "axes",
    # Migration history from before the apps were split; no code (see dashboard/legacy).
    "dashboard.legacy.dashboard",
    "dashboard.legacy.api",
    "dashboard.web",
    "dashboard.projects",
    "dashboard.telemetry",
    "dashboard.runs",
    "dashboard.reports",
    "planner.plans",
    "planner.carbon",
    "dashboard.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "dashboard.web.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "dashboard.web.not_found.AppNotFoundPage",  # the app's 404 page while DEBUG is on, too
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
WSGI_APPLICATION = "dashboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # libpq waits for the system's TCP timeout (minutes) on a host that drops packets: a worker retrying a
    # database outage, or a consumer told to stop, would hang that long on one try. A URL's own wins.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT_S", 10, minimum=1))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets pages read while the ingest path writes; the timeout rides out short write locks. IMMEDIATE:
    # a transaction takes the write lock when it begins, so one that read first (ingest's run lookup) never
    # fails "database is locked" on upgrading to write after another process wrote (two ranks opening one run).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# Sign-in throttling (django-axes): after WATTWISE_LOGIN_FAILURE_LIMIT failed sign-ins, further ones are
# refused with the lockout page (HTTP 429) for WATTWISE_LOGIN_COOLOFF_S, counted per WATTWISE_LOGIN_LOCKOUT_BY:
# comma-separated, each a field or fields joined by "+" (username, ip_address, user_agent); the default
# counts each username from each address, so nobody elsewhere can lock a user out.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("WATTWISE_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("WATTWISE_LOGIN_COOLOFF_S", 900, minimum=1))
_LOCKOUT_FIELDS = {"username", "ip_address", "user_agent"}
AXES_LOCKOUT_PARAMETERS = [
    combination.split("+") for combination in env_list("WATTWISE_LOGIN_LOCKOUT_BY", ["username+ip_address"])
]
if not AXES_LOCKOUT_PARAMETERS or not set().union(*AXES_LOCKOUT_PARAMETERS) <= _LOCKOUT_FIELDS:
    raise ImproperlyConfigured(f"WATTWISE_LOGIN_LOCKOUT_BY: use {', '.join(sorted(_LOCKOUT_FIELDS))}, joined by + or ,")
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
# No "AXES: BEGIN …" line on every manage.py command and worker start; lockouts are still logged.
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "runs"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # plotly.js comes from the installed plotly wheel, so its version always matches the figures.
    "dashboard.web.staticfinders.PlotlyJsFinder",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True

# Behind a proxy that terminates TLS (docs/deploy.md), one switch turns on what HTTPS allows. The app believes
# the proxy's X-Forwarded-Proto, so requests that came over HTTPS are treated as secure; only when clients can
# reach the app through that proxy alone: anyone reaching it directly could send the header themselves.
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", BEHIND_TLS_PROXY)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Plain HTTP is redirected to HTTPS, except the health check (probed inside the compose network), agents'
# ingest (an agent's envelope carries no secret: it is signed, its token never travels; a redirect would
# come after the body was sent anyway; the compose file's demo agent posts to http://web:8000) and /metrics,
# which the compose file's Prometheus scrapes at http://web:8000 on the compose network (a redirect there
# would leave every scrape down). Keep the web port on this host (WATTWISE_HTTP_PORT) so no scraper's token
# crosses a network in clear.
SECURE_SSL_REDIRECT = BEHIND_TLS_PROXY
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^api/ingest$", r"^metrics$"]
# Browsers then keep to HTTPS for this long (a year), for every subdomain, and may be preloaded with it.
SECURE_HSTS_SECONDS = env_int("WATTWISE_HSTS_SECONDS", 365 * 24 * 3600, minimum=0) if BEHIND_TLS_PROXY else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("WATTWISE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("WATTWISE_HSTS_PRELOAD", True)
if BEHIND_TLS_PROXY:
    # Sign-in throttling counts the client's address, not the proxy's.
    AXES_CLIENT_IP_CALLABLE = "dashboard.web.security.forwarded_client_address"
# dashboard.web.security: "off" sends none; a report-only policy is sent beside it (to try a stricter one).
_CSP = env_str("CONTENT_SECURITY_POLICY", STRICT_POLICY)
CONTENT_SECURITY_POLICY = "" if _CSP.strip().lower() == "off" else _CSP
CONTENT_SECURITY_POLICY_REPORT_ONLY = env_str("CONTENT_SECURITY_POLICY_REPORT_ONLY", "")

# --- Celery -------------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
# No broker configured: run tasks in-process so the app works on a laptop with no services.
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Late ack: a worker killed mid-batch leaves the message on the broker, and ingest is idempotent.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 4, minimum=1)
_VISIBILITY_TIMEOUT_S = env_int("CELERY_VISIBILITY_TIMEOUT", 300, minimum=1)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # How long an unacknowledged message waits before Redis hands it to another worker: what a worker killed
    # mid-stream delays its prefetched batches by. Longer than a task's database retries
    # (WATTWISE_DB_RETRY_S), so a task still retrying is not handed out twice.
    "visibility_timeout": _VISIBILITY_TIMEOUT_S,
    # kombu looks for such messages every interval × throttle seconds (by default 10 × 10 s): every tenth of the
    # timeout instead (1 to 10 s), so a dead worker's messages come back within about 1.1 timeouts.
    "unacked_restore_interval": max(1, min(10, _VISIBILITY_TIMEOUT_S // 10)),
    "unacked_restore_throttle": 1,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# On Redis, kombu's transport with a size check (dashboard/broker.py): a message above this is refused before it
# is read, so a worker's memory never holds it, and recorded as a Rejection. Agents' batches are far smaller
# (the wire's body limit is 4 MiB). RabbitMQ has its own limit (max_message_size; docs/deploy.md).
WATTWISE_BROKER_MAX_MESSAGE_BYTES = env_int("WATTWISE_BROKER_MAX_MESSAGE_BYTES", 16 * 1024 * 1024, minimum=1024)
if (CELERY_BROKER_URL or "").startswith("redis://"):
    CELERY_BROKER_TRANSPORT = "dashboard.broker:Transport"
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {"wattwise.*": {"queue": "telemetry"}}
# Every queue the app uses, so a plain `celery -A dashboard worker` consumes them all (`-Q` still narrows
# it). Each as Celery makes one for a route: a direct exchange and a routing key of the queue's name,
# which is where agents on the broker transport publish (wattwise_agent.transport).
CELERY_TASK_QUEUES = [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in ("celery", "telemetry")]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fixup closes the database connection after every task unless told to reuse it; a new
# PostgreSQL connection per batch costs more than writing the batch. Reuse it for this many tasks.
# A connection the database dropped (a restart) is closed and reopened by the ingest tasks themselves
# (dashboard.telemetry.delivery), which Celery's reuse would otherwise keep for good.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000, minimum=0)

# --- Wattwise -----------------------------------------------------------------------------------
# How long an ingest task keeps retrying while the database is unreachable (0.5 s doubling to 8 s between
# tries) before it keeps the message as a dead letter; if even that cannot be written, the message goes back
# on the queue. Keep it under CELERY_VISIBILITY_TIMEOUT.
WATTWISE_DB_RETRY_S = env_float("WATTWISE_DB_RETRY_S", 90.0, minimum=0.0)
# A running run none of whose agents has sent anything for this long is marked interrupted (a killed agent,
# a lost node); it runs again when a batch arrives. Checked by the beat task telemetry.mark_silent_runs.
WATTWISE_SILENT_AFTER_S = env_float("WATTWISE_SILENT_AFTER_S", 600.0, minimum=1.0)
# Batches whose samples lie further than this in the future are rejected (a clock gone wrong).
WATTWISE_MAX_FUTURE_S = env_float("WATTWISE_MAX_FUTURE_S", 300.0, minimum=0.0)
# A counter interval above twice this power (over the interval plus 1 s) counts 0 J and is recorded as
# implausible, for devices whose agent sends no power limit of their own (wattwise_agent.wire_energy).
WATTWISE_MAX_GPU_POWER_W = env_float("WATTWISE_MAX_GPU_POWER_W", 2000.0, minimum=1.0)
# POST /api/ingest answers 429 (agents back off and keep their data) while more messages than this wait on
# the telemetry queue: about 200 MB of Redis at 8-GPU, 5 s batches, a few minutes of a large fleet's data.
WATTWISE_INGEST_MAX_QUEUE = env_int("WATTWISE_INGEST_MAX_QUEUE", 10000, minimum=1)
# Charts draw at most about this many points per trace; totals never come from the drawn series.
WATTWISE_CHART_POINTS = env_int("WATTWISE_CHART_POINTS", 2000, minimum=100)
# How often a streaming run's page fetches fresh cards and charts, in seconds.
WATTWISE_LIVE_POLL_S = env_float("WATTWISE_LIVE_POLL_S", 5.0, minimum=0.5)
# Raw samples (SampleWindow) are kept this many days (by their time), then dropped a week's partition at a
# time by the beat task telemetry.maintain_partitions; runs keep their totals, minute rollups, carbon and
# events. Batch receipts are kept a week longer (by when they arrived). See docs/architecture.md, Storage.
WATTWISE_RAW_RETENTION_DAYS = env_int("WATTWISE_RAW_RETENTION_DAYS", 90, minimum=1)
# Windows are compacted (a stream's consecutive windows of a GPU become one row per chunk: a third less to keep,
# the same figures; dashboard/telemetry/compaction.py) by the beat task telemetry.compact_windows once this
# many seconds have passed since their chunk ended. A chunk is WATTWISE_COMPACT_CHUNK_S long and must divide
# an hour, so that none crosses a partition's bounds.
WATTWISE_COMPACT_AFTER_S = env_int("WATTWISE_COMPACT_AFTER_S", 3600, minimum=60)
WATTWISE_COMPACT_CHUNK_S = env_int("WATTWISE_COMPACT_CHUNK_S", 600, minimum=1)
if 3600 % WATTWISE_COMPACT_CHUNK_S:
    raise ImproperlyConfigured(f"WATTWISE_COMPACT_CHUNK_S must divide 3600 (an hour), not {WATTWISE_COMPACT_CHUNK_S}")

# --- Cache: finished runs' pages (dashboard/runs/page_cache.py) ------------------------------------
# CACHE_URL (redis://host:6379/N) puts Django's cache on Redis, shared by every web process and the workers that
# announce changes; unset, each process keeps its own in memory (the embedded default, no services). A page
# cache that is not shared is still correct (each page's key holds a stamp read from the database), but
# units of work entered in one process or offset prices changed in another reach the others' cached pages
# only after WATTWISE_PAGE_CACHE_S: so with a broker (separate workers) and no CACHE_URL the page cache is off
# unless WATTWISE_PAGE_CACHE=1 turns it on.
CACHE_URL = env_str("CACHE_URL")
CACHES: dict[str, dict[str, object]]
if CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL,
                          "KEY_PREFIX": "wattwise"}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "wattwise",
                          "OPTIONS": {"MAX_ENTRIES": 200}}}  # pages of 0.1-0.5 MB each
# Unset or empty: on, unless a broker is set without CACHE_URL.
WATTWISE_PAGE_CACHE = (CACHE_URL is not None or CELERY_BROKER_URL is None) if env_str("WATTWISE_PAGE_CACHE") is None \
    else env_bool("WATTWISE_PAGE_CACHE", True)
# How long a cached page is kept at most (changes replace it sooner: see dashboard/runs/page_cache.py).
WATTWISE_PAGE_CACHE_S = env_int("WATTWISE_PAGE_CACHE_S", 3600, minimum=1)

# --- Carbon: live grid-intensity providers (each off until configured; see docs/carbon.md) -------
# Secrets are read here and passed to the clients only; they are never logged or shown on a page.
WATTWISE_ELECTRICITYMAPS_TOKEN = env_str("WATTWISE_ELECTRICITYMAPS_TOKEN")
WATTWISE_ELECTRICITYMAPS_URL = env_str("WATTWISE_ELECTRICITYMAPS_URL", "https://api.electricitymaps.com/v3")
WATTWISE_WATTTIME_USERNAME = env_str("WATTWISE_WATTTIME_USERNAME")
WATTWISE_WATTTIME_PASSWORD = env_str("WATTWISE_WATTTIME_PASSWORD")
WATTWISE_WATTTIME_URL = env_str("WATTWISE_WATTTIME_URL", "https://api.watttime.org")
WATTWISE_WATTTIME_SIGNAL = env_str("WATTWISE_WATTTIME_SIGNAL", "co2_moer")
# WattTime regions are not grid zones: ZONE=REGION pairs, e.g. US-CAL-CISO=CAISO_NORTH.
WATTWISE_WATTTIME_REGIONS = env_list("WATTWISE_WATTTIME_REGIONS", [])
# The UK API needs no key; it is still off unless asked for, so an offline install sends nothing.
WATTWISE_UK_CARBON_INTENSITY = env_bool("WATTWISE_UK_CARBON_INTENSITY", False)
WATTWISE_UK_CARBON_INTENSITY_URL = env_str("WATTWISE_UK_CARBON_INTENSITY_URL", "https://api.carbonintensity.org.uk")
WATTWISE_CARBON_PROVIDER_TIMEOUT_S = env_float("WATTWISE_CARBON_PROVIDER_TIMEOUT_S", 10.0, minimum=0.1)
# Zones to poll; empty: every zone in use (sites, project defaults, agent flags of the last 30 days).
WATTWISE_CARBON_POLL_ZONES = env_list("WATTWISE_CARBON_POLL_ZONES", [])
WATTWISE_CARBON_POLL_S = env_int("WATTWISE_CARBON_POLL_S", 3600, minimum=60)
# While a run streams, its carbon figures are recomputed at most this often (seconds); a run that closes is
# recomputed at once. 0: after every stored batch (costly for long runs).
WATTWISE_CARBON_RECOMPUTE_S = env_float("WATTWISE_CARBON_RECOMPUTE_S", 60.0, minimum=0.0)
# Where uploaded intensity files wait for the worker that imports them (the web and worker containers share it).
WATTWISE_IMPORT_DIR = Path(env_str("WATTWISE_IMPORT_DIR", str(BASE_DIR / "var" / "imports")))

CELERY_BEAT_SCHEDULE = {
    "carbon-poll-providers": {"task": "carbon.poll_providers", "schedule": float(WATTWISE_CARBON_POLL_S)},
    # Catches up on figures flagged stale whose queued recompute was lost (broker down at the time).
    "carbon-recompute-stale": {"task": "carbon.recompute_stale", "schedule": 900.0},
    "telemetry-mark-silent-runs": {"task": "telemetry.mark_silent_runs",
                                   "schedule": min(60.0, WATTWISE_SILENT_AFTER_S / 2)},
    # Creates next weeks' partitions of raw windows and receipts, drops expired ones (idempotent, cheap).
    "telemetry-maintain-partitions": {"task": "telemetry.maintain_partitions", "schedule": 3600.0},
    # Compacts closed windows: passes of at most 500 GPUs, until none is left or 5 minutes have gone by.
    "telemetry-compact-windows": {"task": "telemetry.compact_windows", "schedule": 600.0},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One line per task is noise at ingest rates; failures are still logged.
        "celery.app.trace": {"level": "WARNING"},
    },
}
