#!/usr/bin/env bash
# Creates a SoftHSM2 token for Tessera by hand (`tessera init` does this itself for the embedded
# default). Usage:
#   TESSERA_PKCS11_PIN=... TESSERA_PKCS11_SO_PIN=... softhsm/init-token.sh <dir> [token-label]
# Writes <dir>/softhsm2.conf and <dir>/tokens/; point SOFTHSM2_CONF at the conf afterwards.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: TESSERA_PKCS11_PIN=... TESSERA_PKCS11_SO_PIN=... $0 <dir> [token-label]" >&2
  exit 2
fi
: "${TESSERA_PKCS11_PIN:?set TESSERA_PKCS11_PIN to the user PIN}"
: "${TESSERA_PKCS11_SO_PIN:?set TESSERA_PKCS11_SO_PIN to the security officer PIN}"
command -v softhsm2-util >/dev/null || {
  echo "softhsm2-util not found: apt-get install -y softhsm2 (Debian) or brew install softhsm (macOS)" >&2
  exit 1
}

dir=$(mkdir -p "$1" && cd "$1" && pwd)
label=${2:-tessera}
template="$(dirname "${BASH_SOURCE[0]}")/softhsm2.conf.template"

umask 077
chmod 700 "$dir"
mkdir -p "$dir/tokens"
# Escape sed replacement metacharacters in the path.
token_dir=$(printf '%s' "$dir/tokens" | sed 's/[\\&|]/\\&/g')
sed "s|@TOKEN_DIR@|$token_dir|" "$template" > "$dir/softhsm2.conf"
export SOFTHSM2_CONF="$dir/softhsm2.conf"

existing_labels() {
  softhsm2-util --show-slots | sed -n 's/^[[:space:]]*Label:[[:space:]]*//p' | sed 's/[[:space:]]*$//'
}

if existing_labels | grep -Fxq -- "$label"; then
  echo "Token \"$label\" already exists in $dir/tokens; nothing to do."
else
  # softhsm2-util takes PINs only as arguments or from a terminal, so they are briefly visible
  # in the process list; `tessera init` avoids this by initialising the token in-process.
  softhsm2-util --init-token --free --label "$label" \
    --so-pin "$TESSERA_PKCS11_SO_PIN" --pin "$TESSERA_PKCS11_PIN" >/dev/null
  echo "Initialised token \"$label\" in $dir/tokens."
fi
printf 'export SOFTHSM2_CONF=%q\n' "$SOFTHSM2_CONF"
