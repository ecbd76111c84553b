# syntax=docker/dockerfile:1
# lockstep GPU worker: NVIDIA CUDA runtime + cuDNN, Node 20, @tensorflow/tfjs-node-gpu 4.22.0.
# Build from the repository root (linux/amd64: the platform tfjs-node-gpu ships binaries for):
#   docker build -f deploy/docker/worker.Dockerfile -t lockstep-worker-gpu:0.1.0 .
#
# CUDA base: tfjs-node-gpu 4.22 downloads libtensorflow 2.9.1 (GPU), built against CUDA 11.2 and
# cuDNN 8.1; it needs the CUDA 11 sonames (libcudart.so.11.0, libcublas.so.11, libcufft.so.10,
# libcusolver.so.11, libcusparse.so.11, libcurand.so.10) and libcudnn.so.8. The default,
#   nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04  (CUDA 11.8 runtime, cuDNN 8.9),
# provides all of them (CUDA 11.x minor-version compatibility) and its cuDNN 8.9 knows
# Ampere and Hopper GPUs. The exact pair TensorFlow 2.9 was built with is
#   --build-arg CUDA_IMAGE=nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04
# The host needs an NVIDIA driver for CUDA 11 (>= 450.80 through minor-version compatibility,
# >= 520 recommended) and the NVIDIA Container Toolkit.
ARG CUDA_IMAGE=nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04
ARG NODE_IMAGE=node:20-bookworm-slim
ARG TFJS_NODE_GPU_VERSION=4.22.0

# Node 20 comes from the official image (the nodejs.org build, glibc >= 2.28): copied, not
# piped from a setup script, so the version is the one the coordinator image runs.
FROM ${NODE_IMAGE} AS node

FROM ${CUDA_IMAGE} AS base
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version

FROM base AS build
ARG TFJS_NODE_GPU_VERSION
WORKDIR /app
ENV npm_config_update_notifier=false
COPY package.json package-lock.json .npmrc ./
RUN npm ci --ignore-scripts --no-audit --no-fund
# Sources (what .dockerignore lets through: no tests, no credentials).
COPY . .
RUN npx tsc -p deploy/docker/tsconfig.image.json && node scripts/copy-assets.mjs \
 && test -f dist/bin/lockstep.js
# Pin tfjs-node-gpu to the version this base was chosen for, then run its install script:
# it downloads libtensorflow-gpu 2.9.1 and the prebuilt binding (network open here, never at run time).
RUN npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm install --no-save --omit=dev --ignore-scripts --no-audit --no-fund "@tensorflow/tfjs-node-gpu@${TFJS_NODE_GPU_VERSION}" \
 && test "$(node -p "require('@tensorflow/tfjs-node-gpu/package.json').version")" = "${TFJS_NODE_GPU_VERSION}" \
 && rm -rf node_modules/@tensorflow/tfjs-node \
 && sh deploy/docker/install-tfjs-native.sh @tensorflow/tfjs-node-gpu . \
 && npm cache clean --force
# Smoke test without a GPU: libtensorflow must load and find its CUDA/cuDNN sonames on this
# base. No driver (libcuda.so.1) exists at build time; TensorFlow then warns and runs on CPU.
ARG TFJS_LOAD_CHECK=1
RUN if [ "${TFJS_LOAD_CHECK}" = "1" ]; then \
      node -e "require('@tensorflow/tfjs-node-gpu'); console.log('tfjs-node-gpu loads')" > /tmp/tfjs-load.log 2>&1; \
      cat /tmp/tfjs-load.log; \
      grep -q '^tfjs-node-gpu loads$' /tmp/tfjs-load.log \
        || { echo "tfjs-node-gpu does not load on this base (--build-arg TFJS_LOAD_CHECK=0 skips this check)" >&2; exit 1; }; \
    fi

FROM base AS runtime
RUN groupadd --gid 10001 lockstep \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /app --shell /usr/sbin/nologin lockstep
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules/ node_modules/
COPY --from=build /app/dist/ dist/
COPY --from=build /app/deploy/docker/ deploy/docker/
# TF_FORCE_GPU_ALLOW_GROWTH: libtensorflow would otherwise reserve the whole GPU at start.
# CUDA_CACHE_MAXSIZE: TF 2.9 ships PTX up to sm_80; newer GPUs JIT-compile it once, keep the cache.
ENV NODE_ENV=production \
    HOME=/tmp \
    TF_FORCE_GPU_ALLOW_GROWTH=true \
    TF_CPP_MIN_LOG_LEVEL=1 \
    CUDA_CACHE_MAXSIZE=2147483648 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    LOCKSTEP_METRICS_HOST=0.0.0.0 \
    LOCKSTEP_METRICS_PORT=9465
EXPOSE 9465
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=4 \
  CMD ["node", "/app/deploy/docker/healthcheck.js"]
ENTRYPOINT ["/app/deploy/docker/worker-entrypoint.sh"]
CMD []
