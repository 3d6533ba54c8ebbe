#!/bin/sh
# The image's entry point: serve the one function this Cloud Run service runs, as functions-framework would.
# FUNCTION_TARGET (or buildpacks' GOOGLE_FUNCTION_TARGET) names it, as listed in infra/functions.toml; its
# code is FUNCTION_SOURCE, by default functions/<target>/main.py. PORT is set by Cloud Run (8080 otherwise).
set -eu
target="${FUNCTION_TARGET:-${GOOGLE_FUNCTION_TARGET:-}}"
if [ -z "$target" ]; then
    echo "entrypoint: set FUNCTION_TARGET to a function of infra/functions.toml" >&2
    exit 64
fi
source="${FUNCTION_SOURCE:-functions/$target/main.py}"
if [ ! -f "$source" ]; then
    echo "entrypoint: no $source for FUNCTION_TARGET=$target" >&2
    exit 64
fi
exec functions-framework --target "$target" --source "$source" --port "${PORT:-8080}" "$@"
