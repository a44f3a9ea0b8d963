"""sip/: number normalisation and the mapping of LiveKit/SIP results to call outcomes."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from livekit.api import ServerError, SipCallError
from livekit.protocol.models import DisconnectReason

from sip import (
    InvalidNumberError,
    dial_error_outcome,
    left_after_answer_outcome,
    left_before_answer_outcome,
    parse_number,
    to_e164,
)
from sip.dial import RetryPolicy, is_transient


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 (415) 555-2671", "+14155552671"),
        ("+44 20 7946 0958", "+442079460958"),
        ("0044 20 7946 0958", "+442079460958"),
        ("+33 6.12.34.56.78", "+33612345678"),
    ],
)
def test_numbers_normalise_to_e164(raw: str, expected: str) -> None:
    assert to_e164(raw) == expected


@pytest.mark.parametrize("raw", ["4155552671", "+1 555", "+1415555267a", "", "++14155552671"])
def test_ambiguous_or_invalid_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidNumberError):
        to_e164(raw)


def test_a_number_is_parsed_once_into_form_type_and_region() -> None:
    london = parse_number("+44 20 7946 0018")
    assert london.e164 == "+442079460018"
    assert (london.country_code, london.region) == (44, "GB")
    assert london.number_type == phonenumbers.PhoneNumberType.FIXED_LINE
    # +1 876 is Jamaica, not the US: the region is the number's own
    assert parse_number("+1 876 555 0123").region == "JM"


def test_valid_means_a_known_type_for_every_example_number() -> None:
    """parse_number decides validity from the type alone (one metadata lookup, not two):
    that must agree with phonenumbers' own is_valid_number."""
    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in range(12):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            assert phonenumbers.is_valid_number(example)
            assert parse_number(e164).e164 == e164
            checked += 1
        invalid = "+" + str(phonenumbers.country_code_for_region(region)) + "0"
        with pytest.raises(InvalidNumberError):
            parse_number(invalid)
    assert checked > 1000


def test_type_and_region_are_phonenumbers_own() -> None:
    """parse_number finds the region once and looks the type up in its metadata (not
    `phonenumbers.number_type`, which finds the region again): both must stay phonenumbers'
    answers, for every example number and for random numbers in shared country codes."""
    rng = random.Random(24)
    samples = [
        phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        for region in sorted(phonenumbers.SUPPORTED_REGIONS)
        for kind in range(12)
        if (example := phonenumbers.example_number_for_type(region, kind)) is not None
    ]
    samples += [f"+1{rng.randrange(2_000_000_000, 9_999_999_999)}" for _ in range(3000)]
    samples += [f"+7{rng.randrange(10**9, 10**10)}" for _ in range(1000)]
    samples += [f"+44{rng.randrange(10**9, 10**10)}" for _ in range(1000)]
    valid = 0
    for e164 in samples:
        parsed = phonenumbers.parse(e164, None)
        expected = phonenumbers.number_type(parsed)
        if expected == phonenumbers.PhoneNumberType.UNKNOWN:
            with pytest.raises(InvalidNumberError):
                parse_number(e164)
            continue
        destination = parse_number(e164)
        assert destination.number_type == expected, e164
        assert destination.region == phonenumbers.region_code_for_number(parsed), e164
        valid += 1
    assert valid > 3000


@pytest.mark.parametrize(
    ("code", "meta", "status", "reason", "sip_code"),
    [
        (
            "resource_exhausted",
            {"sip_status_code": "486", "sip_status": "Busy Here"},
            "busy",
            "busy",
            486,
        ),
        ("permission_denied", {"sip_status_code": "603"}, "busy", "rejected", 603),
        ("not_found", {"sip_status_code": "404"}, "failed", "invalid_number", 404),
        ("deadline_exceeded", {"sip_status_code": "408"}, "no_answer", "no_answer", 408),
        ("canceled", {}, "no_answer", "no_answer", None),
        ("failed_precondition", {"sip_status_code": "503"}, "failed", "trunk_failure", 503),
        ("unavailable", {}, "failed", "livekit_error", None),
    ],
)
def test_dial_errors_map_to_outcomes(
    code: str, meta: dict[str, str], status: str, reason: str, sip_code: int | None
) -> None:
    outcome = dial_error_outcome(SipCallError(code, "x", status=400, metadata=meta))
    assert (outcome.status, outcome.reason, outcome.sip_status_code) == (status, reason, sip_code)
    plain = dial_error_outcome(ServerError(code, "x", status=400, metadata=meta))
    assert plain == outcome


def test_leaving_before_answer_uses_sip_code_then_disconnect_reason_then_state() -> None:
    attributes = {"sip.callStatus": "ringing", "sip.statusCode": "486", "sip.status": "Busy Here"}
    busy = left_before_answer_outcome(DisconnectReason.CLIENT_INITIATED, attributes)
    assert (busy.status, busy.reason, busy.sip_status_code, busy.sip_status) == (
        "busy",
        "busy",
        486,
        "Busy Here",
    )
    ringing, dialing = {"sip.callStatus": "ringing"}, {"sip.callStatus": "dialing"}
    assert left_before_answer_outcome(DisconnectReason.USER_REJECTED, ringing).status == "busy"
    unavailable = left_before_answer_outcome(DisconnectReason.USER_UNAVAILABLE, ringing)
    assert unavailable.status == "no_answer"
    trunk = left_before_answer_outcome(DisconnectReason.SIP_TRUNK_FAILURE, dialing)
    assert (trunk.status, trunk.reason) == ("failed", "trunk_failure")
    # No reason given: it rang and stopped (not answered), or never got past dialing.
    vague = DisconnectReason.CLIENT_INITIATED
    assert left_before_answer_outcome(vague, ringing).status == "no_answer"
    assert left_before_answer_outcome(vague, dialing).reason == "trunk_failure"


def test_leaving_after_answer_completes_the_call() -> None:
    assert left_after_answer_outcome(DisconnectReason.CLIENT_INITIATED).reason == "hangup_by_callee"
    assert left_after_answer_outcome(DisconnectReason.ROOM_DELETED).reason == "hangup_by_agent"
    assert left_after_answer_outcome(DisconnectReason.MEDIA_FAILURE).status == "completed"


def test_only_transport_and_server_errors_are_transient() -> None:
    assert is_transient(TimeoutError())
    assert is_transient(ServerError("unavailable", "x", status=503))
    assert is_transient(ServerError("internal", "x", status=500))
    assert not is_transient(ServerError("invalid_argument", "x", status=400))
    assert not is_transient(ValueError())
    assert RetryPolicy(attempts=4, first_delay=0.5, max_delay=1.0).delays() == [0.5, 1.0, 1.0]
