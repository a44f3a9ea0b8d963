"""One `Settings` class: every knob comes from the environment (see `.env.example`)."""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sip.numbers import parse_countries

# A trunk's calls per second: 0 (unlimited) or at least one call per 100 s. Slower rates
# would space dials further than the pacing keys live, and ever smaller ones overflow.
MIN_CALLS_PER_SECOND = 0.01


def checked_rate(value: float) -> float:
    if 0 < value < MIN_CALLS_PER_SECOND:
        raise ValueError(f"a rate is 0 (unlimited) or at least {MIN_CALLS_PER_SECOND} calls/s")
    return value


def parse_sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` (an IPv6 host in brackets) as (host, port) pairs, in order;
    ValueError naming the first entry that is not one."""
    sentinels: list[tuple[str, int]] = []
    for entry in (item.strip() for item in text.split(",")):
        if not entry:
            continue
        host, colon, port_text = entry.rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]")
        host = host[1:-1] if bracketed else host
        forbidden = " /@[]" if bracketed else " /@[]:"
        if not colon or not host or any(char in host for char in forbidden):
            raise ValueError(f"{entry!r} is not host:port (a sentinel, e.g. sentinel-1:26379)")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535")
        if (host, int(port_text)) in sentinels:
            raise ValueError(f"{entry!r} is listed twice")
        sentinels.append((host, int(port_text)))
    return tuple(sentinels)


# prometheus_client's multiprocess directory, read by prometheus_client when it is imported:
# `outdial worker` sets it before any worker process starts (api/cli/main.py), and the worker's
# metrics server serves what its processes write there (api/jobs/metrics_server.py).
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    redis_url: str = Field("redis://127.0.0.1:6379/0", alias="REDIS_URL")
    # Redis Sentinel (docs/deploy.md, "Redis with failover"): with both set, every client
    # asks these sentinels (comma-separated host:port) for the primary of the service, and
    # asks again whenever it loses it; REDIS_URL then gives only the scheme (rediss:// for
    # TLS), user, password, db and TLS options of the primary, not its address.
    redis_sentinels_text: str = Field("", alias="REDIS_SENTINELS")
    redis_sentinel_service: str = Field("", alias="REDIS_SENTINEL_SERVICE")
    # The sentinels' own password (`requirepass` in sentinel.conf), and whether they speak
    # TLS (with REDIS_URL's ssl_* options: one CA for the sentinels and the primary).
    redis_sentinel_password: str = Field("", alias="REDIS_SENTINEL_PASSWORD")
    redis_sentinel_tls: bool = Field(False, alias="REDIS_SENTINEL_TLS")

    # Replicas that must hold a write before it counts (docs/deploy.md, "What a failover
    # costs"): an accepted call and a call's `dialing` mark (taken before its dial) wait, on
    # their own connection, until this many replicas have them (Redis WAIT, up to 1 s), and
    # fail as if Redis were down when they do not: a failover then never loses an answered
    # accept, nor the mark that keeps a redelivered dial from ringing twice. 0: no wait.
    redis_wait_replicas: int = Field(0, ge=0, le=16, alias="OUTDIAL_REDIS_WAIT_REPLICAS")

    @field_validator("redis_sentinels_text")
    @classmethod
    def _parsable_sentinels(cls, text: str) -> str:
        parse_sentinels(text)  # a typo would otherwise surface as a failover that never comes
        return text

    @model_validator(mode="after")
    def _sentinels_with_their_service(self) -> Settings:
        if bool(self.redis_sentinels) != bool(self.redis_sentinel_service.strip()):
            raise ValueError(
                "REDIS_SENTINELS and REDIS_SENTINEL_SERVICE go together: set both "
                "(sentinels and the primary's service name) or neither"
            )
        if self.redis_sentinels and urlsplit(self.redis_url).scheme not in ("redis", "rediss"):
            raise ValueError(
                "with REDIS_SENTINELS, REDIS_URL must be redis:// or rediss:// (its host is "
                "replaced by the primary the sentinels name)"
            )
        return self

    @property
    def redis_sentinels(self) -> tuple[tuple[str, int], ...]:
        return parse_sentinels(self.redis_sentinels_text)

    livekit_url: str = Field("http://127.0.0.1:7880", alias="LIVEKIT_URL")
    livekit_api_key: str = Field("", alias="LIVEKIT_API_KEY")
    livekit_api_secret: str = Field("", alias="LIVEKIT_API_SECRET")
    # How long one LiveKit server API request may take (livekit-api's own default is 10 s).
    # A dial that times out has an unknown outcome: the dispatcher looks at the room.
    livekit_timeout_seconds: float = Field(
        10.0, gt=0, le=120, alias="OUTDIAL_LIVEKIT_TIMEOUT_SECONDS"
    )

    # Tenancy and abuse (webhook age, metrics token): a signed LiveKit webhook whose
    # `created_at` is further than this from the API's clock, past or future, is refused
    # (the window doubles as the clock-skew allowance between LiveKit and the API).
    livekit_webhook_max_age_seconds: int = Field(
        300, ge=30, le=3600, alias="OUTDIAL_LIVEKIT_WEBHOOK_MAX_AGE_SECONDS"
    )
    # When set, `/metrics` needs `Authorization: Bearer <token>`, and `/readyz` shows its
    # error details only with this token (or the admin token).
    metrics_token: str = Field("", alias="OUTDIAL_METRICS_TOKEN")

    admin_token: str = Field("", alias="OUTDIAL_ADMIN_TOKEN")
    public_url: str = Field("http://127.0.0.1:8000", alias="OUTDIAL_PUBLIC_URL")
    agent_name: str = Field("outdial-agent", alias="OUTDIAL_AGENT_NAME")
    default_sip_trunk_id: str | None = Field(None, alias="OUTDIAL_DEFAULT_SIP_TRUNK_ID")
    # Signs per-call event tokens. Falls back to a key derived from LIVEKIT_API_SECRET.
    secret_key: str = Field("", alias="OUTDIAL_SECRET_KEY")

    callback_allow_private: bool = Field(False, alias="OUTDIAL_CALLBACK_ALLOW_PRIVATE")

    # Tenancy and abuse: what a workspace's agent may name (checked when an agent is
    # written; the worker name again when a call is accepted). Comma-separated lists.
    # Worker names besides `agent_name` (always allowed): LiveKit dispatches a call's
    # contract, event token included, to whichever worker registered that name.
    allowed_worker_names_text: str = Field("", alias="OUTDIAL_ALLOWED_WORKER_NAMES")
    # Model base URLs an agent may name besides none (the worker's own); such an endpoint
    # never gets the operator's key, only the workspace's own (`api_key_ref`) or none.
    allowed_model_base_urls_text: str = Field("", alias="OUTDIAL_ALLOWED_MODEL_BASE_URLS")
    # Domains a `sip:` transfer_to may name; empty allows no sip: URI (E.164 always).
    allowed_transfer_domains_text: str = Field("", alias="OUTDIAL_ALLOWED_TRANSFER_DOMAINS")

    @staticmethod
    def _items(text: str) -> frozenset[str]:
        return frozenset(item.strip() for item in text.split(",") if item.strip())

    def worker_name_allowed(self, name: str) -> bool:
        return name == self.agent_name or name in self._items(self.allowed_worker_names_text)

    @property
    def allowed_model_base_urls(self) -> frozenset[str]:
        """Compared without a trailing slash."""
        return frozenset(url.rstrip("/") for url in self._items(self.allowed_model_base_urls_text))

    @property
    def allowed_transfer_domains(self) -> frozenset[str]:
        return frozenset(
            domain.lower() for domain in self._items(self.allowed_transfer_domains_text)
        )

    # Namespaces every Redis key (store and broker), so several stacks or test runs share a DB.
    redis_prefix: str = Field("outdial", alias="OUTDIAL_REDIS_PREFIX")
    call_retention_days: int = Field(30, ge=1, alias="OUTDIAL_CALL_RETENTION_DAYS")
    log_level: str = Field("INFO", alias="OUTDIAL_LOG_LEVEL")
    log_json: bool = Field(True, alias="OUTDIAL_LOG_JSON")

    # Dispatch worker tuning (see docs/operations.md for why these values).
    worker_threads: int = Field(16, ge=1, alias="OUTDIAL_WORKER_THREADS")
    # With wake-ups: the fallback poll of an idle consumer (a lost wake-up costs at most
    # this); without: the cap of Dramatiq's idle poll backoff, i.e. the pick-up latency.
    worker_timeout_ms: int = Field(1000, ge=5, alias="OUTDIAL_WORKER_TIMEOUT_MS")
    worker_wakeups: bool = Field(True, alias="OUTDIAL_WORKER_WAKEUPS")
    heartbeat_timeout_ms: int = Field(10_000, ge=1_000, alias="OUTDIAL_HEARTBEAT_TIMEOUT_MS")
    worker_metrics_port: int = Field(9191, ge=0, le=65535, alias="OUTDIAL_WORKER_METRICS_PORT")
    maintenance_chance: int = Field(100_000, ge=1, le=1_000_000, alias="OUTDIAL_MAINTENANCE_CHANCE")
    # Bench only (api/jobs/profiling.py): each worker process's CPU profile goes here.
    worker_profile_dir: str = Field("", alias="OUTDIAL_WORKER_PROFILE_DIR")

    @model_validator(mode="after")
    def _poll_within_heartbeat(self) -> Settings:
        # An idle worker's heartbeat is refreshed by its polls: with fewer than 4 per
        # heartbeat timeout, live workers would look dead and their messages be run twice.
        if self.worker_timeout_ms * 4 > self.heartbeat_timeout_ms:
            raise ValueError(
                "OUTDIAL_WORKER_TIMEOUT_MS must be at most a quarter of "
                "OUTDIAL_HEARTBEAT_TIMEOUT_MS (an idle worker's polls are its heartbeat)"
            )
        return self

    # Defaults for a call when neither the request nor the agent sets them.
    default_ring_timeout_seconds: int = Field(30, ge=5, le=80, alias="OUTDIAL_RING_TIMEOUT_SECONDS")
    default_max_duration_seconds: int = Field(
        1800, ge=10, le=14_400, alias="OUTDIAL_MAX_DURATION_SECONDS"
    )

    # The call's order (docs/operations.md, "Dial only when an agent is there"): with
    # `agent_ready` the dial waits until the agent reports it can speak; `agent_joined` also
    # takes an agent participant joining the room as ready (for workers that never report);
    # `immediate` dials right after CreateRoom (faster to ring, but a callee may answer to
    # silence).
    dial_mode: Literal["agent_ready", "agent_joined", "immediate"] = Field(
        "agent_ready", alias="OUTDIAL_DIAL_MODE"
    )
    agent_ready_timeout_seconds: int = Field(
        15, ge=1, le=300, alias="OUTDIAL_AGENT_READY_TIMEOUT_SECONDS"
    )
    # Minute balances (docs/operations.md, "Minute balances"): an answered call is billed
    # from its answer, per started second or per started minute; fixed on the call at its
    # accept. Only workspaces the operator gave credits are metered.
    billing_rounding: Literal["second", "minute"] = Field(
        "second", alias="OUTDIAL_BILLING_ROUNDING"
    )
    # Once answered, an agent must be in the room within this long (else the room goes).
    agent_answer_grace_seconds: int = Field(
        10, ge=1, le=300, alias="OUTDIAL_AGENT_ANSWER_GRACE_SECONDS"
    )
    # Deadlines (docs/operations.md, "No call left hanging"): queued/dispatching calls
    # must reach the agent wait or the dial within `dispatch_timeout`; dialing/ringing and
    # in-progress calls get `deadline_margin` on top of their ring timeout / max duration.
    dispatch_timeout_seconds: int = Field(120, ge=5, alias="OUTDIAL_DISPATCH_TIMEOUT_SECONDS")
    deadline_margin_seconds: int = Field(20, ge=1, le=600, alias="OUTDIAL_DEADLINE_MARGIN_SECONDS")
    # A call held back by its trunk's or workspace's limits fails `WAITING_TIMEOUT` after
    # waiting this long (its deadline while it waits).
    max_waiting_seconds: int = Field(3600, ge=10, le=86_400, alias="OUTDIAL_MAX_WAITING_SECONDS")
    reconcile_interval_seconds: float = Field(
        0.5, gt=0, le=60, alias="OUTDIAL_RECONCILE_INTERVAL_SECONDS"
    )
    # A claimed deadline comes back this much later if the job checking it died (longer
    # than the job's time limit, so two checks of one call never overlap).
    reconcile_lease_seconds: int = Field(90, ge=1, alias="OUTDIAL_RECONCILE_LEASE_SECONDS")

    # Pacing (docs/operations.md, "Pacing: what each trunk can take"): the deployment's
    # limits, 0 meaning unlimited (no carrier's numbers fit every trunk: set your carrier's).
    # A trunk's own limits (admin or numbers API) and a workspace's `max_concurrent_calls`
    # (admin API) override them. Dials of a trunk are spaced (1000 + guard) / rate ms apart,
    # so network jitter up to the guard cannot put more than `rate` dials into one second.
    trunk_max_calls_per_second: float = Field(
        0, ge=0, le=1000, alias="OUTDIAL_TRUNK_MAX_CALLS_PER_SECOND"
    )
    trunk_max_concurrent_calls: int = Field(
        0, ge=0, le=100_000, alias="OUTDIAL_TRUNK_MAX_CONCURRENT_CALLS"
    )
    workspace_max_concurrent_calls: int = Field(
        0, ge=0, le=100_000, alias="OUTDIAL_WORKSPACE_MAX_CONCURRENT_CALLS"
    )
    trunk_rate_guard_ms: int = Field(20, ge=0, le=500, alias="OUTDIAL_TRUNK_RATE_GUARD_MS")

    # Callback delivery: delays in seconds between attempts; the last entry repeats
    # until `callback_retry_window_seconds` has passed since the first attempt.
    callback_retry_schedule: list[float] = Field(
        [1, 5, 30, 120, 600, 1800, 3600], alias="OUTDIAL_CALLBACK_RETRY_SCHEDULE"
    )
    callback_retry_window_seconds: int = Field(86_400, ge=1, alias="OUTDIAL_CALLBACK_RETRY_WINDOW")
    callback_timeout_seconds: float = Field(10.0, gt=0, alias="OUTDIAL_CALLBACK_TIMEOUT")
    callback_max_in_flight_per_workspace: int = Field(
        32, ge=1, alias="OUTDIAL_CALLBACK_MAX_IN_FLIGHT_PER_WORKSPACE"
    )

    # Toll fraud (tenancy and abuse): which destinations calls may dial. Countries are ISO
    # 3166 alpha-2 codes, comma-separated, empty allows all; the operator may give a
    # workspace its own list (admin API). Premium-rate, shared-cost, UAN, personal, pager
    # and satellite numbers are refused unless high-cost destinations are allowed.
    allowed_countries_text: str = Field("", alias="OUTDIAL_ALLOWED_COUNTRIES")
    allow_high_cost_destinations: bool = Field(False, alias="OUTDIAL_ALLOW_HIGH_COST_DESTINATIONS")
    # The most numbers one workspace's do-not-call list holds (`api.store.dnc`): an add
    # past it is refused whole (DNC_LIST_FULL).
    dnc_max_numbers: int = Field(1_000_000, ge=1, le=100_000_000, alias="OUTDIAL_DNC_MAX_NUMBERS")

    @field_validator("trunk_max_calls_per_second")
    @classmethod
    def _a_usable_rate(cls, value: float) -> float:
        return checked_rate(value)

    @field_validator("allowed_countries_text")
    @classmethod
    def _known_countries(cls, text: str) -> str:
        parse_countries(text)  # a typo ("UK") would silently refuse a whole country
        return text

    @property
    def allowed_countries(self) -> frozenset[str]:
        return parse_countries(self.allowed_countries_text)

    # Tenancy and abuse (agent events, redelivery): what an agent's event token may add to
    # one call (informational events; a late `call.transcript` is taken for a grace after
    # the end, any other event is refused then), and how many `redeliver` requests one
    # workspace may make per minute.
    agent_event_max_bytes: int = Field(65_536, ge=1024, alias="OUTDIAL_AGENT_EVENT_MAX_BYTES")
    agent_events_per_call: int = Field(1000, ge=50, alias="OUTDIAL_AGENT_EVENTS_PER_CALL")
    agent_event_bytes_per_call: int = Field(
        2 * 1024 * 1024, ge=65_536, alias="OUTDIAL_AGENT_EVENT_BYTES_PER_CALL"
    )
    agent_late_transcript_grace_seconds: int = Field(
        60, ge=0, le=3600, alias="OUTDIAL_AGENT_LATE_TRANSCRIPT_GRACE_SECONDS"
    )
    redeliveries_per_minute: int = Field(
        30, ge=1, le=10_000, alias="OUTDIAL_REDELIVERIES_PER_MINUTE"
    )
    # Live event streams (`GET /v1/api/events/stream`) one workspace may hold open at once.
    event_streams_per_workspace: int = Field(
        10, ge=1, le=1000, alias="OUTDIAL_EVENT_STREAMS_PER_WORKSPACE"
    )
    # ... and the whole deployment (every API process): each holds a Redis connection.
    event_streams_max: int = Field(500, ge=1, le=100_000, alias="OUTDIAL_EVENT_STREAMS_MAX")

    # Contact CSV uploads (docs/csv-import.md): a file past these is refused with its code
    # (CSV_TOO_LARGE, CSV_TOO_MANY_ROWS, CSV_TOO_MANY_COLUMNS); a longer field rejects its
    # row (`field_too_long`). Rows are data rows, the header and blank lines not counted.
    csv_max_bytes: int = Field(
        100 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024, alias="OUTDIAL_CSV_MAX_BYTES"
    )
    csv_max_rows: int = Field(1_000_000, ge=1, le=10_000_000, alias="OUTDIAL_CSV_MAX_ROWS")
    csv_max_columns: int = Field(128, ge=1, le=1024, alias="OUTDIAL_CSV_MAX_COLUMNS")
    csv_max_field_chars: int = Field(4096, ge=16, le=65_536, alias="OUTDIAL_CSV_MAX_FIELD_CHARS")

    @property
    def broker_namespace(self) -> str:
        return f"{self.redis_prefix}-dramatiq"

    @property
    def event_signing_key(self) -> bytes:
        if self.secret_key:
            return self.secret_key.encode()
        return hmac.new(
            self.livekit_api_secret.encode(), b"outdial-event-token", hashlib.sha256
        ).digest()

    @property
    def events_base_url(self) -> str:
        return self.public_url.rstrip("/")


@lru_cache
def get_settings() -> Settings:
    return Settings()
