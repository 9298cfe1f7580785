#!/usr/bin/env bash
# Test entry point for serving_image/: (re)creates serving_image/.venv when the
# pinned requirements change, installs the package, runs the pytest suite
# (everything except the container-image test, see scripts/test-image.sh).
# Works from any cwd; extra arguments go to pytest. Exits non-zero on failure.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$HERE/.venv"
cd "$HERE"

"$HERE/scripts/ensure-venv.sh"

# The Redis rate-limit tests need a real redis-server; they fail (never skip) without one.
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null
  else
    echo "serving_image/scripts/test.sh: redis-server is missing; install it (apt-get install redis-server)" >&2
    exit 1
  fi
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export PYTHONDONTWRITEBYTECODE=1
exec "$VENV/bin/python" -m pytest "$HERE/tests" -m "not image" -p no:cacheprovider -q -rs "$@"
