# syntax=docker/dockerfile:1
# lockstep CPU image: the coordinator (default target) and the CPU-only worker (--target worker-cpu).
# Build from the repository root (linux/amd64: the platform tfjs-node ships prebuilt bindings for):
#   docker build -f deploy/docker/coordinator.Dockerfile -t lockstep-coordinator:0.1.0 .
#   docker build -f deploy/docker/coordinator.Dockerfile --target worker-cpu -t lockstep-worker-cpu:0.1.0 .
# Native TensorFlow (@tensorflow/tfjs-node 4.22, libtensorflow 2.9 CPU) is downloaded here, at
# build time; --backend auto then prefers it over wasm (DESIGN.md section 4).
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV npm_config_update_notifier=false
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: no dependency runs an install script here; the one native package we
# want is installed explicitly below (and the GPU one not at all).
RUN npm ci --ignore-scripts --no-audit --no-fund
# Sources (what .dockerignore lets through: no tests, no credentials).
COPY . .
RUN npx tsc -p deploy/docker/tsconfig.image.json && node scripts/copy-assets.mjs \
 && test -f dist/bin/lockstep.js
RUN npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/@tensorflow/tfjs-node-gpu \
 && sh deploy/docker/install-tfjs-native.sh @tensorflow/tfjs-node . \
 && npm cache clean --force
# libtensorflow must load on this base (glibc, libstdc++), or --backend auto would quietly fall to wasm.
RUN node -e "require('@tensorflow/tfjs-node'); console.log('tfjs-node loads')" 2>&1 | tee /tmp/tfjs-load.log \
 && grep -q '^tfjs-node loads$' /tmp/tfjs-load.log

FROM ${NODE_IMAGE} AS runtime
# One non-root identity, the same uid in every lockstep image (Kubernetes runAsUser: 10001).
RUN groupadd --gid 10001 lockstep \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /app --shell /usr/sbin/nologin lockstep \
 && mkdir -p /data/checkpoints && chown 10001:10001 /data/checkpoints
WORKDIR /app
# Owned by root, read-only to the runtime user: the process writes only to /data and /tmp.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules/ node_modules/
COPY --from=build /app/dist/ dist/
COPY --from=build /app/deploy/docker/ deploy/docker/
ENV NODE_ENV=production \
    HOME=/tmp \
    LOCKSTEP_METRICS_HOST=0.0.0.0

FROM runtime AS worker-cpu
ENV LOCKSTEP_METRICS_PORT=9465
EXPOSE 9465
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=4 \
  CMD ["node", "/app/deploy/docker/healthcheck.js"]
ENTRYPOINT ["/app/deploy/docker/worker-entrypoint.sh"]
CMD []

FROM runtime AS coordinator
ENV LOCKSTEP_METRICS_PORT=9464 \
    LOCKSTEP_DASHBOARD_HOST=0.0.0.0 \
    LOCKSTEP_DASHBOARD_PORT=8080 \
    LOCKSTEP_CHECKPOINT_DIR=/data/checkpoints
EXPOSE 9464 8080
VOLUME ["/data/checkpoints"]
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=4 \
  CMD ["node", "/app/deploy/docker/healthcheck.js"]
ENTRYPOINT ["/app/deploy/docker/entrypoint.sh"]
CMD ["coordinator"]
