#!/usr/bin/env bash
# Entrypoint of the sip service: deploy/sip.yaml plus exactly one public-address line.
#
#   OUTDIAL_SIP_PUBLIC_IP set    ->  nat_1_to_1_ip: <it>    (no STUN at startup)
#   OUTDIAL_SIP_PUBLIC_IP empty  ->  use_external_ip: true  (STUN at startup)
#
# livekit/sip refuses a config with both, and with use_external_ip it exits (status 0) when
# STUN fails; a host that knows its address should not depend on STUN. The body goes to
# livekit-sip in SIP_CONFIG_BODY, which it reads before --config (cmd/livekit-sip/main.go).
set -euo pipefail

config_file="${SIP_CONFIG_FILE:-/sip/config.yaml}"
public_ip="${OUTDIAL_SIP_PUBLIC_IP:-}"

body="$(cat "$config_file")"
if grep -qE '^(use_external_ip|nat_1_to_1_ip):' <<<"$body"; then
  echo "sip-entrypoint: $config_file sets the public address itself; set OUTDIAL_SIP_PUBLIC_IP instead" >&2
  exit 64
fi

if [ -n "$public_ip" ]; then
  # An IPv4 address, each octet 0-255: a typo here would make SIP exit on every start.
  valid=1
  IFS=. read -r -a octets <<<"$public_ip"
  if [ "${#octets[@]}" -ne 4 ] || ! [[ "$public_ip" =~ ^[0-9]+(\.[0-9]+){3}$ ]]; then
    valid=0
  else
    for octet in "${octets[@]}"; do
      if [ "${#octet}" -gt 3 ] || [ "$((10#$octet))" -gt 255 ]; then valid=0; fi
    done
  fi
  if [ "$valid" -ne 1 ]; then
    echo "sip-entrypoint: OUTDIAL_SIP_PUBLIC_IP=$public_ip is not an IPv4 address" >&2
    exit 64
  fi
  body+=$'\n'"nat_1_to_1_ip: $public_ip"$'\n'
  echo "sip-entrypoint: public address $public_ip (OUTDIAL_SIP_PUBLIC_IP)" >&2
else
  body+=$'\n'"use_external_ip: true"$'\n'
  echo "sip-entrypoint: public address from STUN (set OUTDIAL_SIP_PUBLIC_IP to skip it)" >&2
fi

export SIP_CONFIG_BODY="$body"
exec livekit-sip
