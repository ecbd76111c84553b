// The checkpoint manifest: what a step directory holds and how to check it.
import { z } from 'zod';

export const CHECKPOINT_FORMAT = 1;

export const manifestSchema = z.object({
  format: z.literal(CHECKPOINT_FORMAT),
  kind: z.literal('lockstep-checkpoint'),
  createdAt: z.string(),
  job: z.string(),
  term: z.number().int().min(0),
  /** Steps applied so far: the next step to run. */
  step: z.number().int().min(0),
  epoch: z.number().int().min(0),
  cursor: z.object({ batchInEpoch: z.number().int().min(0), stepsPerEpoch: z.number().int().min(1), datasetSize: z.number().int().min(1) }),
  /** The planner and the VAE noise are pure functions of (seed, step, index): this is the whole RNG state. */
  rng: z.object({ algorithm: z.literal('lockstep-hash32'), seed: z.number().int() }),
  config: z.record(z.unknown()),
  model: z.object({ kind: z.string(), arch: z.string(), numParams: z.number().int().min(1), latentDim: z.number().int(), filters: z.number().int(), hiddenUnits: z.number().int(), seed: z.number().int() }),
  optimizer: z.object({ name: z.literal('adam'), t: z.number().int().min(0), lr: z.number(), beta1: z.number(), beta2: z.number(), epsilon: z.number() }),
  losses: z.array(z.number().nullable()),
  samples: z.number().int().min(0),
  /** Relative path -> sha256 hex of every other file in the directory. */
  files: z.record(z.string().regex(/^[0-9a-f]{64}$/)),
});

export type Manifest = z.infer<typeof manifestSchema>;
