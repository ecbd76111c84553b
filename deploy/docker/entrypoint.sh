#!/bin/sh
# Entry point of the coordinator image: `lockstep coordinator` unless another subcommand is given.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
app="${LOCKSTEP_APP_DIR:-/app}"
. "$here/entrypoint-lib.sh"
lockstep_load_secret_files

if lockstep_has_subcommand "$@"; then
  cmd="$1"
  shift
else
  cmd=coordinator
fi
cd "$app"
exec node dist/bin/lockstep.js "$cmd" "$@"
