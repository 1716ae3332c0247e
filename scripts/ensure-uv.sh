#!/usr/bin/env sh
# Print the path of a working `uv`, installing it from PyPI first if the machine has none.
# Tries: uv on PATH, ~/.local/bin/uv, `pip install --user uv`, and finally a private virtualenv
# in .data/uv (for Pythons that refuse user installs, PEP 668).
set -e
if command -v uv >/dev/null 2>&1; then command -v uv; exit 0; fi
if [ -x "$HOME/.local/bin/uv" ]; then echo "$HOME/.local/bin/uv"; exit 0; fi
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -x "$root/.data/uv/bin/uv" ]; then echo "$root/.data/uv/bin/uv"; exit 0; fi
if python3 -m pip install --user --quiet uv >/dev/null 2>&1 && [ -x "$HOME/.local/bin/uv" ]; then
  echo "$HOME/.local/bin/uv"; exit 0
fi
mkdir -p "$root/.data"
python3 -m venv "$root/.data/uv" >&2
"$root/.data/uv/bin/pip" install --quiet uv >&2
echo "$root/.data/uv/bin/uv"
