#!/usr/bin/env bash
# Creates .env from .env.example (if .env does not exist yet) and fills every secret that is
# still empty with 32 random bytes in hex. Never changes a value that is already set, so it
# is safe to run again. Usage, from the repository root:  deploy/init-env.sh [path/to/.env]
set -euo pipefail
cd "$(dirname "$0")/.."

env_file="${1:-.env}"
secrets=(LIVEKIT_API_SECRET OUTDIAL_ADMIN_TOKEN OUTDIAL_SECRET_KEY)

if [ ! -e "$env_file" ]; then
  cp .env.example "$env_file"
  chmod 600 "$env_file"
  echo "created $env_file from .env.example"
fi

random_hex() {
  if command -v openssl >/dev/null 2>&1; then
    openssl rand -hex 32
  else
    python3 -c "import secrets; print(secrets.token_hex(32))"
  fi
}

for name in "${secrets[@]}"; do
  if grep -q "^${name}=$" "$env_file"; then
    value="$(random_hex)"
    # hex has no characters special to sed; write through a temp file (portable, keeps mode)
    sed "s/^${name}=\$/${name}=${value}/" "$env_file" > "$env_file.tmp"
    cat "$env_file.tmp" > "$env_file"
    rm -f "$env_file.tmp"
    echo "generated $name"
  elif ! grep -q "^${name}=" "$env_file"; then
    echo "$name is missing from $env_file; add it (see .env.example)" >&2
    exit 1
  fi
done
