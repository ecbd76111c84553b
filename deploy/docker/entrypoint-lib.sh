# Sourced by the image entrypoints (POSIX sh).
#
# Secrets as files: Kubernetes mounts a worker's own NATS password as a file (subPathExpr
# on the pod name), Docker secrets work the same way. For each LOCKSTEP_<X>_FILE below, the
# file's content becomes LOCKSTEP_<X>, and the _FILE variable is removed so that lockstep's
# own environment parsing never sees a name that is not a flag.
lockstep_load_secret_files() {
  for name in NATS_PASS NATS_TOKEN DASHBOARD_TOKEN; do
    eval "file=\${LOCKSTEP_${name}_FILE:-}"
    # shellcheck disable=SC2154 # assigned by eval
    if [ -n "$file" ]; then
      if [ ! -f "$file" ] || [ ! -r "$file" ]; then
        # In Kubernetes: a worker id without a key in the Secret (deploy/README.md, adding identities).
        echo "entrypoint: LOCKSTEP_${name}_FILE=$file is not a readable file" >&2
        exit 64
      fi
      value="$(cat "$file")"
      export "LOCKSTEP_${name}=$value"
      unset "LOCKSTEP_${name}_FILE"
    fi
  done
}

# True when the arguments already name a subcommand (the image's role is then only the default).
lockstep_has_subcommand() {
  case "${1:-}" in
    train|coordinator|worker|eval|sample|bench) return 0 ;;
    *) return 1 ;;
  esac
}
