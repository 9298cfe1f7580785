#!/usr/bin/env bash
# Create or refresh serving_image/.venv. Reinstalls only when requirements*.txt,
# pyproject.toml or the Python version change (hash stamp in .venv/.stamp).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$HERE/.venv"
PY="${PYTHON:-python3}"
STAMP_SRC="$(cat "$HERE/requirements.txt" "$HERE/requirements-dev.txt" "$HERE/pyproject.toml"; "$PY" -c 'import sys; print(sys.version)')"
WANT="$(printf '%s' "$STAMP_SRC" | sha256sum | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ -f "$VENV/.stamp" ] && [ "$(cat "$VENV/.stamp")" = "$WANT" ]; then
  exit 0
fi
echo "serving_image: installing pinned dependencies into $VENV" >&2
"$PY" -m venv "$VENV"
# torch is pinned exactly (requirements.txt); pip's configured find-links supply the CPU wheel.
"$VENV/bin/pip" install --disable-pip-version-check -q -r "$HERE/requirements-dev.txt"
"$VENV/bin/pip" install --disable-pip-version-check -q --no-deps -e "$HERE"
"$VENV/bin/python" -c "import torch, transformers, llmops_serving; print('torch', torch.__version__, 'transformers', transformers.__version__)" >&2
echo "$WANT" > "$VENV/.stamp"
