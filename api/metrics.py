"""Prometheus metrics of the API and the worker.

The API serves its process's registry (`/metrics`); the worker's processes share theirs in
prometheus_client's multiprocess mode (api/jobs/metrics_server.py), where counters and
histograms are summed over processes. The gauges (`QUEUE_DEPTH` and the dialer's backlog)
are set only by the API (never in the worker's processes), so they need no multiprocess mode.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS_ACCEPTED = Counter("outdial_calls_accepted_total", "Calls accepted by POST /v1/api/call")
CALLS_REFUSED = Counter(
    "outdial_calls_refused_total", "Calls refused by POST /v1/api/call", ["code"]
)
CALLS_ENDED = Counter(
    "outdial_calls_ended_total", "Calls that reached a terminal state", ["status"]
)
BILLED_SECONDS = Counter(
    "outdial_billed_seconds_total",
    "Seconds billed for ended calls (from the answer, rounded as OUTDIAL_BILLING_ROUNDING), "
    "metered workspaces or not",
)
DISPATCH_DURATION = Histogram(
    "outdial_dispatch_duration_seconds",
    "Dial job run time, from message pick-up to the dial request answered",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TIME_TO_DIAL = Histogram(
    "outdial_time_to_dial_seconds",
    "From call accepted to CreateSIPParticipant answered",
    buckets=(0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CALLBACK_DELIVERIES = Counter(
    "outdial_callback_deliveries_total", "Callback delivery attempts by outcome", ["outcome"]
)
RELAY_TURNED_AWAY = Counter(
    "outdial_relay_turned_away_total",
    "Relay messages put back because the relay's share of worker threads was taken",
)
CALLS_RECONCILED = Counter(
    "outdial_calls_reconciled_total",
    "Calls checked against LiveKit at their deadline, by status then and what was done",
    ["status", "action"],
)
RECONCILE_ERRORS = Counter(
    "outdial_reconcile_errors_total",
    "Deadline checks that could not look at LiveKit (retried at the next lease)",
)
WEBHOOKS_MISSED = Counter(
    "outdial_livekit_webhooks_missed_total",
    "Calls the reconciler settled from LiveKit's state because no webhook told the API",
)
# Sampled from Redis by the API process that serves the scrape (`/metrics`), at the scrape.
QUEUE_DEPTH = Gauge("outdial_queue_depth", "Messages waiting in a Dramatiq queue", ["queue"])
# The dialer's backlog, sampled the same way (`api.store.probes`).
CALLS_WAITING = Gauge(
    "outdial_calls_waiting",
    "Queued calls waiting for room on their trunk or workspace, by reason (waitingFor)",
    ["reason"],
)
TRUNK_SLOTS_IN_USE = Gauge(
    "outdial_trunk_slots_in_use",
    "Concurrency slots held per trunk (unexpired leases): the busiest 20 trunks using any, "
    'the rest summed under trunk="other"',
    ["trunk"],
)
PACER_LAG = Gauge(
    "outdial_pacer_lag_seconds",
    "How long ago the pacer should have looked at its most overdue trunk (0: on time)",
)
SCHEDULED_CALLS = Gauge(
    "outdial_scheduled_calls", "Scheduled calls, due (not yet claimed) or later", ["state"]
)
SCHEDULER_LAG = Gauge(
    "outdial_scheduler_lag_seconds",
    "How long ago the earliest unclaimed scheduled call fell due (0: none overdue)",
)
