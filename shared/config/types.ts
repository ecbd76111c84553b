import type { ARCHS, BACKENDS, LOG_LEVELS, MODELS } from './spec.js';

export type ModelKind = (typeof MODELS)[number];
export type Arch = (typeof ARCHS)[number];
export type BackendName = (typeof BACKENDS)[number];
export type LogLevelName = (typeof LOG_LEVELS)[number];

/** The compiled, frozen options. Which fields are set depends on the command. */
export interface Options {
  readonly model: ModelKind;
  readonly arch: Arch;
  readonly workers: number;
  readonly job: string;
  readonly epochs?: number;
  readonly steps?: number;
  readonly batchSize: number;
  readonly lr: number;
  readonly seed: number;
  readonly latentDim: number;
  readonly filters: number;
  readonly hiddenUnits: number;
  readonly trainLimit?: number;
  readonly testLimit?: number;
  readonly dataDir?: string;
  readonly checkpointDir: string;
  readonly checkpointEvery: number;
  readonly keepCheckpoints: number;
  readonly resume?: boolean | string;
  readonly checkpoint?: string;
  readonly out: string;
  readonly label?: number;
  readonly count: number;
  readonly manifold?: boolean;
  readonly nats?: string;
  readonly natsUser?: string;
  readonly natsPass?: string;
  readonly natsToken?: string;
  readonly natsCreds?: string;
  readonly natsTlsCa?: string;
  readonly natsTlsCert?: string;
  readonly natsTlsKey?: string;
  readonly workerId?: string;
  readonly backend: BackendName;
  readonly metricsPort: number;
  readonly metricsHost: string;
  readonly dashboardPort: number;
  readonly dashboardHost: string;
  readonly dashboardToken?: string;
  readonly heartbeatTimeout: number;
  readonly stepTimeout: number;
  readonly minWorkers: number;
  readonly waitWorkers: number;
  readonly stragglerFactor: number;
  readonly timeline?: string;
  readonly logLevel: LogLevelName;
  readonly json?: boolean;
  readonly progress?: boolean;
}
