#!/bin/sh
# Entry point of the worker images (GPU and CPU): `lockstep worker` with the backend chosen
# by select-backend.sh, unless --backend or LOCKSTEP_BACKEND says otherwise.
# Any other flag can be appended (`docker run IMAGE --job j1`) or given as LOCKSTEP_* env.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
app="${LOCKSTEP_APP_DIR:-/app}"
. "$here/entrypoint-lib.sh"
lockstep_load_secret_files

if lockstep_has_subcommand "$@"; then
  cmd="$1"
  shift
else
  cmd=worker
fi

explicit=0
for arg in "$@"; do
  case "$arg" in --backend|--backend=*) explicit=1 ;; esac
done
if [ "$explicit" -eq 0 ] && [ -z "${LOCKSTEP_BACKEND:-}" ]; then
  backend="$(LOCKSTEP_APP_DIR="$app" "$here/select-backend.sh")"
  set -- --backend "$backend" "$@"
fi

cd "$app"
exec node dist/bin/lockstep.js "$cmd" "$@"
