'use strict';
// Container HEALTHCHECK: GET /healthz on this process's metrics port (LOCKSTEP_METRICS_PORT,
// which each image sets: coordinator 9464, worker 9465). Exit 0 on HTTP 200, 1 otherwise.
// Node instead of curl/wget: the slim and CUDA bases ship neither.
const http = require('node:http');

const raw = (process.env.LOCKSTEP_METRICS_PORT ?? '').trim();
const port = raw === '' ? NaN : Number(raw);
if (port === 0) {
  // --metrics-port 0 turns the HTTP server off: nothing to ask, the process being up is all we know.
  process.exit(0);
}
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(`healthcheck: LOCKSTEP_METRICS_PORT=${process.env.LOCKSTEP_METRICS_PORT ?? ''} is not a port`);
  process.exit(1);
}
const timeoutMs = Number(process.env.LOCKSTEP_HEALTHCHECK_TIMEOUT_MS ?? '4000');
const req = http.get({ host: '127.0.0.1', port, path: '/healthz', timeout: timeoutMs }, (res) => {
  res.resume();
  if (res.statusCode === 200) process.exit(0);
  console.error(`healthcheck: /healthz answered ${res.statusCode}`);
  process.exit(1);
});
req.on('timeout', () => {
  console.error(`healthcheck: no answer from 127.0.0.1:${port} within ${timeoutMs} ms`);
  req.destroy();
  process.exit(1);
});
req.on('error', (err) => {
  console.error(`healthcheck: ${err.message}`);
  process.exit(1);
});
