#!/usr/bin/env bash
# Installs the benchmark's peer gateways into a cache folder (default .cache/bench, gitignored).
# Nothing of theirs is committed. Each install is skipped when already present; a failed one is
# reported on stderr and the script goes on, so the benchmark can say why a peer is missing.
#
# Usage: bench/peers/install.sh [CACHE_DIR] [PEER...]   PEER: nginx vllm-router portkey litellm
set -u
CACHE="${1:-.cache/bench}"
shift || true
PEERS=("$@")
[ ${#PEERS[@]} -eq 0 ] && PEERS=(nginx vllm-router portkey litellm)
mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"
PYTHON="${BENCH_PYTHON:-python3}"
status=0

venv() { # venv NAME PACKAGE...
  local dir="$CACHE/$1"
  shift
  if [ ! -x "$dir/bin/python" ]; then
    "$PYTHON" -m venv "$dir" || return 1
  fi
  "$dir/bin/pip" install -q --disable-pip-version-check "$@"
}

for peer in "${PEERS[@]}"; do
  case "$peer" in
    nginx)
      if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >&2 || status=1
      fi
      for tool in wrk hey; do
        command -v "$tool" >/dev/null ||
          DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >&2 || status=1
      done
      ;;
    vllm-router)
      [ -x "$CACHE/vllm-router/bin/vllm-router" ] || venv vllm-router vllm-router >&2 || {
        echo "install.sh: vllm-router failed" >&2
        status=1
      }
      ;;
    litellm)
      [ -x "$CACHE/litellm/bin/litellm" ] || venv litellm 'litellm[proxy]' >&2 || {
        echo "install.sh: litellm[proxy] failed" >&2
        status=1
      }
      ;;
    portkey)
      [ -f "$CACHE/portkey/node_modules/@portkey-ai/gateway/build/start-server.js" ] || {
        mkdir -p "$CACHE/portkey" &&
          npm install --silent --no-audit --no-fund --prefix "$CACHE/portkey" @portkey-ai/gateway >&2
      } || {
        echo "install.sh: @portkey-ai/gateway failed" >&2
        status=1
      }
      ;;
    *) echo "install.sh: unknown peer $peer" >&2 ;;
  esac
done
exit $status
