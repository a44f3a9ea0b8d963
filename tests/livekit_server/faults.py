"""Fault injection for Twirp RPCs: errors, delays and dropped connections, consumed in order.

A fault matches on (service, method); "*" matches any. Faults are consulted in the order
they were injected and each matching request uses up one of the first live fault's
``times`` (None = until clear_faults). Only one fault applies per request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .twirp import TWIRP_STATUS

# Twirp code used when only an HTTP status is given (the inverse of the usual mapping).
_CODE_FOR_STATUS: dict[int, str] = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    408: "deadline_exceeded",
    409: "already_exists",
    412: "failed_precondition",
    429: "resource_exhausted",
    500: "internal",
    501: "unimplemented",
    502: "unavailable",
    503: "unavailable",
    504: "unavailable",
}

# SIP status -> Twirp code, as livekit/protocol's SIPStatus.GRPCStatus() maps it.
_SIP_TWIRP_CODE: dict[int, str] = {
    401: "permission_denied",
    402: "permission_denied",
    403: "permission_denied",
    404: "not_found",
    407: "unauthenticated",
    408: "deadline_exceeded",
    409: "failed_precondition",
    410: "not_found",
    412: "failed_precondition",
    416: "out_of_range",
    480: "resource_exhausted",
    481: "not_found",
    486: "resource_exhausted",
    487: "aborted",
    482: "failed_precondition",
    483: "failed_precondition",
    491: "aborted",
    504: "deadline_exceeded",
    505: "invalid_argument",
    513: "invalid_argument",
    600: "resource_exhausted",
    603: "permission_denied",
    604: "not_found",
    607: "permission_denied",
    608: "permission_denied",
}


def sip_error_code(sip_status_code: int) -> str:
    """The Twirp code livekit-server answers for a failed SIP dial with this SIP status."""
    if sip_status_code in _SIP_TWIRP_CODE:
        return _SIP_TWIRP_CODE[sip_status_code]
    if 500 <= sip_status_code < 600:
        return "failed_precondition"
    return "invalid_argument"


@dataclass
class Fault:
    service: str
    method: str
    code: str | None = None
    status: int | None = None
    message: str = "injected"
    meta: dict[str, str] = field(default_factory=dict)
    delay_before: float = 0.0
    delay_after: float = 0.0
    drop: bool = False
    times: int | None = 1
    # when to answer the error / drop the connection: after applying the request (True)
    # or instead of applying it (False). Default: after iff delay_after > 0.
    after_apply: bool | None = None
    used: int = 0

    @property
    def is_error(self) -> bool:
        return self.code is not None or self.status is not None

    @property
    def applies_first(self) -> bool:
        """True when the request is applied to state before the fault answers/drops."""
        if self.after_apply is not None:
            return self.after_apply
        return self.delay_after > 0

    def error_code_and_status(self) -> tuple[str, int]:
        code = self.code or _CODE_FOR_STATUS.get(self.status or 500, "unknown")
        status = self.status or TWIRP_STATUS.get(code, 500)
        return code, status

    def matches(self, service: str, method: str) -> bool:
        return self.service in ("*", service) and self.method in ("*", method)


class FaultTable:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        if fault.times is not None and fault.times < 1:
            raise ValueError("times must be >= 1 or None")
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, service: str, method: str) -> Fault | None:
        # fast path for benchmarks: no lock and no scan when nothing is injected
        if not self._faults:
            return None
        with self._lock:
            for fault in self._faults:
                if fault.matches(service, method):
                    fault.used += 1
                    if fault.times is not None and fault.used >= fault.times:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)
