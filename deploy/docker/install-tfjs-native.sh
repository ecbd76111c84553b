#!/bin/sh
# Runs the install script of a TensorFlow.js native package (@tensorflow/tfjs-node or
# @tensorflow/tfjs-node-gpu) at image build, where the network is open: it downloads
# libtensorflow and the prebuilt N-API binding. `npm ci --ignore-scripts` ran before it,
# so that no other package's script runs and the package we do not want downloads nothing.
#
# npm 11 gates dependency install scripts behind an allowScripts policy (and refuses
# --allow-scripts on a project-scoped command), so a plain `npm rebuild` may skip the script
# or fail: then the package's own install script is run directly with `npm run`, which is
# the project invoking a script by name, not a dependency lifecycle hook.
# Fails the build when the binding or libtensorflow is still missing afterwards.
#
#   deploy/docker/install-tfjs-native.sh @tensorflow/tfjs-node-gpu [APP_DIR]
set -u
pkg="${1:?usage: install-tfjs-native.sh PACKAGE [APP_DIR]}"
app="${2:-.}"
dir="$app/node_modules/$pkg"

installed() {
  [ -n "$(find "$dir/lib" -name tfjs_binding.node 2>/dev/null | head -n 1)" ] &&
    [ -n "$(find "$dir" -name 'libtensorflow.so*' 2>/dev/null | head -n 1)" ]
}

if [ ! -f "$dir/package.json" ]; then
  echo "install-tfjs-native: $dir is missing (is $pkg in package-lock.json?)" >&2
  exit 1
fi
version="$(node -p 'require(require("node:path").resolve(process.argv[1])).version' "$dir/package.json" 2>/dev/null || echo '?')"
echo "install-tfjs-native: $pkg $version" >&2

(cd "$app" && npm rebuild "$pkg" --foreground-scripts) || echo "install-tfjs-native: npm rebuild $pkg failed; trying its install script" >&2
if ! installed; then
  echo "install-tfjs-native: npm did not run $pkg's install script; running it directly" >&2
  (cd "$dir" && npm run install --foreground-scripts) || true
fi
if ! installed; then
  echo "install-tfjs-native: $pkg has no tfjs_binding.node or libtensorflow after install" >&2
  exit 1
fi
echo "install-tfjs-native: $pkg ready: $(find "$dir/lib" -name tfjs_binding.node | head -n 1)" >&2
