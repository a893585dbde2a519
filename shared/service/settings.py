"""The one place configuration is read: environment variables prefixed ``MINQING_``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Self

from limits import parse_many
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ServiceName = Literal["intake", "assignment", "followup", "projection"]
SERVICES: tuple[ServiceName, ...] = ("intake", "assignment", "followup", "projection")

REFERENCE_DIR = Path(__file__).parents[1] / "contract" / "reference_data"
_NAME = r"^[A-Za-z0-9_-]+$"
_PREFIX = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"


class Settings(BaseSettings):
    """Settings shared by every service; each service reads the fields it needs."""

    model_config = SettingsConfigDict(env_prefix="MINQING_", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    # Who this process is on NATS: a file with its NKey seed (what `minqing nats-config`
    # writes, one per user) or a `.creds` file (a user JWT and its seed). Unset: connect
    # without credentials (a server without authorization).
    nats_credentials: Path | None = None
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/minqing"
    stream_name: str = Field("MINQING_EVENTS", pattern=_NAME)
    subject_prefix: str = Field("minqing.events", pattern=_PREFIX)
    # Department systems publish reports on <ingress_subject_prefix>.<source>.report; every
    # message's outcome goes to <outcomes_subject_prefix>.<source>; what cannot be accepted
    # goes to the dead-letter stream. Each stream captures <prefix>.>, so no two may overlap.
    ingress_stream_name: str = Field("MINQING_INGRESS", pattern=_NAME)
    ingress_subject_prefix: str = Field("minqing.ingress", pattern=_PREFIX)
    outcomes_stream_name: str = Field("MINQING_OUTCOMES", pattern=_NAME)
    outcomes_subject_prefix: str = Field("minqing.outcomes", pattern=_PREFIX)
    dlq_stream_name: str = Field("MINQING_DLQ", pattern=_NAME)
    dlq_subject_prefix: str = Field("minqing.dlq", pattern=_PREFIX)
    # An ingress message (body) larger than this is dead-lettered ("too_large"); the ingress
    # stream itself stores messages up to ingress_stream_max_msg_bytes so that such a
    # message reaches the consumer (and fits in the dead-letter stream with its reason).
    max_ingress_bytes: int = Field(64 * 1024, ge=1024)
    ingress_stream_max_msg_bytes: int = Field(512 * 1024, ge=2048, le=900 * 1024)
    # How long the outcomes stream keeps an outcome, for a system that was offline.
    outcomes_max_age_days: float = Field(7.0, gt=0)
    duplicate_window_seconds: float = Field(600.0, gt=0)
    # Copies of each stream the NATS cluster keeps (its `num_replicas`): 1 on one server (the
    # embedded one of `minqing up`), 3 on a three-node cluster. A service creates a missing
    # stream with this count, and refuses to start against one whose settings differ.
    stream_replicas: int = Field(1, ge=1, le=5)
    # Seconds between a client's pings to its NATS server; two unanswered pings mark the
    # connection stale and the client moves to another server of the cluster. A node cut off
    # by the network sends no reset, so this bounds how long a service waits on it.
    nats_ping_seconds: int = Field(10, ge=1, le=600)
    host: str = "127.0.0.1"
    intake_port: int = 8081
    assignment_port: int = 8082
    followup_port: int = 8083
    projection_port: int = 8084
    # The front door (Caddy, services/frontdoor.py): the one address people use, in front of
    # the services' ports. With a certificate and its key (PEM files) it serves HTTPS only,
    # with HSTS; without them plain HTTP, meant for loopback. It never obtains certificates.
    front_host: str = "127.0.0.1"
    front_port: int = Field(8080, ge=1, le=65535)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    timezone: str = "Asia/Shanghai"
    reference_dir: Path = REFERENCE_DIR
    # Working days: the Chinese official calendar (chinesecalendar + `calendar.toml` in the
    # reference directory), or plain Monday to Friday.
    calendar: Literal["cn-official", "weekdays"] = "cn-official"
    # How often provisional deadlines are counted again (also once at every start).
    recompute_interval_seconds: float = Field(3600.0, gt=0)
    # How often followup checks deadlines and look-back windows (also once at every start).
    deadline_check_seconds: float = Field(60.0, gt=0)
    consumer_batch_size: int = Field(500, ge=1, le=2000)
    consumer_max_deliver: int = Field(8, ge=1)
    consumer_ack_wait_seconds: float = Field(30.0, gt=0)
    consumer_retry_delay_seconds: float = Field(1.0, gt=0)
    relay_batch_size: int = Field(200, ge=1, le=5000)
    relay_poll_seconds: float = Field(0.5, gt=0)
    startup_timeout_seconds: float = Field(30.0, gt=0)
    consumer_check_seconds: float = Field(5.0, gt=0)
    consumer_stall_seconds: float = Field(60.0, gt=0)
    retention_days: float = Field(30.0, gt=0)
    dead_letter_retention_days: float = Field(90.0, gt=0)
    prune_interval_seconds: float = Field(3600.0, gt=0)
    # The HTTP edge: a larger request body is refused with 413 (reports are a few KiB).
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    # Paths that take files (an Open311 photo, a compiled list): a larger body is a 413.
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    # Staff's photos (POST /api/v1/photos, intake's private store): a larger photo is a 413.
    # A photo on a matter is kept photo_retention_days after its upload, one never attached
    # to a matter photo_orphan_hours; then its bytes are deleted (its id and SHA-256 stay,
    # as the events name them). Intake prunes every photo_prune_interval_seconds.
    photo_max_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    photo_retention_days: float = Field(1095.0, gt=0)
    photo_orphan_hours: float = Field(24.0, gt=0)
    photo_prune_interval_seconds: float = Field(3600.0, gt=0)
    # Database waits: opening a connection, one statement (the client gives up one second
    # after the server should have), and waiting for a free connection from the pool.
    database_connect_timeout_seconds: float = Field(5.0, gt=0)
    database_statement_timeout_seconds: float = Field(5.0, gt=0)
    database_pool_timeout_seconds: float = Field(5.0, gt=0)
    database_pool_size: int = Field(16, ge=2, le=200)
    # A new report whose title is at least this alike (0-100, rapidfuzz token-set ratio) to an
    # open matter's in the same village and category joins that matter; above 100: never.
    duplicate_threshold: float = Field(85.0, ge=0, le=101)
    # Compiled lists (`minqing import`, POST /api/v1/imports): at most this many rows per
    # file (the file itself is bounded by max_upload_bytes); rows are accepted in the
    # background this many per transaction; `?wait=true` waits at most this long for the
    # report; an idle worker looks for rows left waiting (a restart) this often.
    import_max_rows: int = Field(10_000, ge=1, le=1_000_000)
    import_batch_size: int = Field(100, ge=1, le=5000)
    import_wait_seconds: float = Field(10.0, ge=0, le=300)
    import_poll_seconds: float = Field(2.0, gt=0)
    # An XLSX is a zip of XML: before it is parsed, what it unzips to (all files together),
    # its number of files, and its cells and rows (its shared strings as many) are bounded;
    # so is the text of a list's rows as read (a shared string shown by many cells counts
    # each time). Over one of them is a 413 naming it. A list is read in a child process
    # with at most import_reader_memory_bytes of memory and import_reader_seconds of time.
    import_max_unzipped_bytes: int = Field(64 * 1024 * 1024, ge=1024 * 1024)
    import_max_zip_entries: int = Field(1_000, ge=10)
    import_max_cells: int = Field(500_000, ge=1_000)
    import_max_text_chars: int = Field(16_000_000, ge=100_000)
    import_reader_memory_bytes: int = Field(512 * 1024 * 1024, ge=64 * 1024 * 1024)
    import_reader_seconds: float = Field(60.0, gt=0)
    # Open311: the one jurisdiction this endpoint serves (a request naming another is a 404),
    # and the public URL of /open311/v2 behind a proxy (media_url, discovery); default: the
    # URL the request came in on.
    open311_jurisdiction_id: str = Field("minqing", min_length=1, max_length=200)
    open311_public_url: str | None = Field(None, pattern=r"^https?://[^\s]+$")
    # Answers to reporters (when a matter is resolved, and when it is closed): "log" writes
    # them to the service log; "webhook" POSTs each as JSON to notifier_webhook_url (an SMS
    # gateway's adapter), trying notifier_attempts times per round with notifier_timeout_seconds
    # each. A reply not delivered is tried again later (doubling, up to
    # reply_retry_max_seconds), never dropped. The worker looks for due replies every
    # reply_poll_seconds. A reply's feedback link is <feedback_base_url>/feedback/<token>
    # (none when unset), and takes an answer for feedback_days after the reply was sent:
    # 30 by default, long enough for a resident away over a week's holiday (and for the
    # reply on closing, which brings its own link, to come ~2 weeks after the one on
    # resolution), short enough that a score still speaks of the work just done.
    notifier_kind: Literal["log", "webhook"] = "log"
    notifier_webhook_url: str | None = Field(None, pattern=r"^https?://[^\s]+$")
    notifier_timeout_seconds: float = Field(5.0, gt=0, le=120)
    notifier_attempts: int = Field(3, ge=1, le=10)
    reply_poll_seconds: float = Field(2.0, gt=0)
    reply_batch_size: int = Field(50, ge=1, le=1000)
    reply_retry_max_seconds: float = Field(600.0, gt=0)
    feedback_base_url: str | None = Field(None, pattern=r"^https?://[^\s]+$")
    feedback_days: int = Field(30, ge=1, le=366)
    # Residents may be invited to supervise matters of these category groups (projects that
    # improve production and living facilities).
    supervision_groups: list[str] = Field(default_factory=lambda: ["livelihood"])
    # The read models this projection process keeps, comma-separated (`history,issues`), or
    # `all`: each has its own durable consumer, so they can run in separate processes.
    projection_views: str = Field("all", pattern=r"^[a-z_]+(,[a-z_]+)*$")
    # The list counts its matters up to this many (beyond: "10,000+"): an exact count costs
    # a scan of every match, and the statistics give exact figures.
    list_count_limit: int = Field(10_000, ge=1)
    # The pages' sessions end after this long without a request, and at the latest this many
    # hours after logging in. Logging in is limited per name and per address (moving
    # windows, `limits` notation): over either, a 429 with Retry-After.
    session_idle_minutes: float = Field(30.0, gt=0)
    session_max_hours: float = Field(12.0, gt=0)
    login_attempts_per_name: str = Field("5/minute", pattern=r"^\d+ ?(/|per) ?\d* ?[a-z]+$")
    login_attempts_per_address: str = Field("30/minute", pattern=r"^\d+ ?(/|per) ?\d* ?[a-z]+$")
    # Requests of every service are limited per principal, per source (a system's channel,
    # shared by its tokens) and, without credentials (public endpoints), per client address:
    # moving windows in memory, `limits` notation; each process counts on its own. Over one:
    # a 429 with Retry-After. Empty: no limit of that kind (benchmarks). Health, readiness
    # and metrics are never limited.
    rate_limit_per_principal: str = "600/minute"
    rate_limit_per_source: str = "600/minute"
    rate_limit_anonymous: str = "120/minute"
    # Who holds a bearer token is kept in memory between requests while a connection
    # listens for changes of the identity schema (shared/identity/cache.py: a revoked token
    # or a disabled person is refused within milliseconds), at most this many seconds.
    # 0: every request reads the database.
    identity_cache_seconds: float = Field(300.0, ge=0)
    # OpenID Connect, for a county or city with an identity provider (shared/identity/oidc.py;
    # docs/operator/identity-provider.md). Off while oidc_issuer is unset. APIs take bearer
    # JWTs whose `aud` holds oidc_audience; the pages log in with the authorization code
    # flow and PKCE as the confidential client oidc_client_id (optional: APIs only without).
    oidc_issuer: str | None = Field(None, pattern=r"^https?://[^\s?#]+$")
    oidc_audience: str | None = Field(None, min_length=1)
    oidc_client_id: str | None = Field(None, min_length=1)
    oidc_client_secret: SecretStr | None = None
    oidc_redirect_url: str | None = Field(None, pattern=r"^https?://[^\s#]+$")
    oidc_scopes: str = Field("openid profile", pattern=r"^openid( [!#-\[\]-~]+)*$")
    # The claims a person is read from: the login (falling back to `sub` when absent), the
    # name shown, and the roles, each `role@unit` (e.g. `unit_staff@town_construction`).
    oidc_login_claim: str = Field("preferred_username", min_length=1)
    oidc_name_claim: str = Field("name", min_length=1)
    oidc_roles_claim: str = Field("minqing_roles", min_length=1)
    # The provider's keys are kept this long; a token naming a key not among them fetches
    # them again, at most once per oidc_jwks_refetch_seconds.
    oidc_jwks_cache_seconds: float = Field(3600.0, gt=0)
    oidc_jwks_refetch_seconds: float = Field(30.0, ge=0)
    oidc_clock_skew_seconds: int = Field(60, ge=0, le=300)
    # Signature algorithms accepted, comma-separated; asymmetric ones only (never `none`,
    # never HS*: a provider's public key must not become a shared secret).
    oidc_algorithms: str = Field(
        "RS256,ES256",
        pattern=r"^(RS|PS|ES)(256|384|512)(,(RS|PS|ES)(256|384|512))*$",
    )
    oidc_http_timeout_seconds: float = Field(5.0, gt=0, le=60)
    # Traces (shared/service/tracing.py, docs/operator/observability.md): the OpenTelemetry
    # collector's OTLP/HTTP base URL (`/v1/traces` is appended); unset, the standard
    # OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT are read; none set: no traces, at no cost.
    otlp_endpoint: str | None = Field(None, pattern=r"^https?://[^\s]+$")
    # Logs of `minqing serve` (shared/service/logs.py): one JSON object per line on stderr,
    # or `console`, the same fields for people to read.
    log_format: Literal["json", "console"] = "json"

    @field_validator("nats_url")
    @classmethod
    def _server_list(cls, value: str) -> str:
        """One NATS URL, or a cluster's several separated by commas (the client connects to
        any that answers and learns the rest from the cluster)."""
        servers = [each.strip() for each in value.split(",")]
        for each in servers:
            if not re.fullmatch(r"(nats|tls)://[^\s,/]+", each):
                raise ValueError(
                    f"expected nats://host:port (several separated by commas): {each!r}"
                )
        return ",".join(servers)

    @property
    def nats_servers(self) -> list[str]:
        """``nats_url`` as the list of servers a client is given."""
        return self.nats_url.split(",")

    @field_validator("rate_limit_per_principal", "rate_limit_per_source", "rate_limit_anonymous")
    @classmethod
    def _one_rate_limit(cls, value: str) -> str:
        """One limit in `limits` notation (``600/minute``, ``10 per second``), or empty."""
        value = value.strip()
        if value:
            try:
                parsed = parse_many(value)
            except ValueError:
                parsed = []
            if len(parsed) != 1 or parsed[0].amount < 1:
                raise ValueError(f"expected one limit such as '600/minute', or empty: {value!r}")
        return value

    @model_validator(mode="after")
    def _oidc_complete(self) -> Self:
        """OIDC on (an issuer) needs the API's audience; the pages' login needs its client's
        secret and redirect URL."""
        if self.oidc_issuer is None:
            return self
        if not self.oidc_audience:
            raise ValueError("oidc_issuer needs oidc_audience (the APIs' client id)")
        if self.oidc_client_id and not (self.oidc_client_secret and self.oidc_redirect_url):
            raise ValueError("oidc_client_id needs oidc_client_secret and oidc_redirect_url")
        return self

    @model_validator(mode="after")
    def _tls_complete(self) -> Self:
        """A certificate without its key (or a key without its certificate) is a mistake."""
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: set both or neither")
        return self

    @model_validator(mode="after")
    def _streams_apart(self) -> Self:
        """Each stream captures ``<prefix>.>``: no prefix may equal or contain another,
        and the four streams need four names."""
        prefixes = {
            "subject_prefix": self.subject_prefix,
            "ingress_subject_prefix": self.ingress_subject_prefix,
            "outcomes_subject_prefix": self.outcomes_subject_prefix,
            "dlq_subject_prefix": self.dlq_subject_prefix,
        }
        for a, pa in prefixes.items():
            for b, pb in prefixes.items():
                if a < b and (pa == pb or pa.startswith(pb + ".") or pb.startswith(pa + ".")):
                    raise ValueError(f"{a} ({pa!r}) and {b} ({pb!r}) overlap")
        names = [self.stream_name, self.ingress_stream_name]
        names += [self.outcomes_stream_name, self.dlq_stream_name]
        if len(set(names)) != len(names):
            raise ValueError(f"the stream names must differ: {names}")
        if self.ingress_stream_max_msg_bytes <= self.max_ingress_bytes:
            raise ValueError("ingress_stream_max_msg_bytes must be larger than max_ingress_bytes")
        if self.notifier_kind == "webhook" and not self.notifier_webhook_url:
            raise ValueError("notifier_kind 'webhook' needs notifier_webhook_url")
        return self

    def port(self, service: ServiceName) -> int:
        """The HTTP port of one service."""
        ports: dict[ServiceName, int] = {
            "intake": self.intake_port,
            "assignment": self.assignment_port,
            "followup": self.followup_port,
            "projection": self.projection_port,
        }
        return ports[service]
