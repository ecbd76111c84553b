// What a worker needs to know about the job, sent in the join-ack. Validated at
// the worker's edge like every other message body.
import { z } from 'zod';
import { ProtocolError } from '../errors.js';
import type { Options } from '../config/types.js';
import { MODELS, ARCHS } from '../config/spec.js';

export const jobConfigSchema = z.object({
  model: z.enum(MODELS),
  arch: z.enum(ARCHS),
  latentDim: z.number().int().min(1),
  filters: z.number().int().min(1),
  hiddenUnits: z.number().int().min(1),
  seed: z.number().int().min(0),
  batchSize: z.number().int().min(1),
  trainLimit: z.number().int().min(1).nullable(),
  datasetSize: z.number().int().min(1),
  numParams: z.number().int().min(1),
  heartbeatTimeout: z.number().positive(),
});

export type JobConfig = z.infer<typeof jobConfigSchema>;

export function jobConfigOf(o: Options, datasetSize: number, numParams: number): JobConfig {
  return {
    model: o.model,
    arch: o.arch,
    latentDim: o.latentDim,
    filters: o.filters,
    hiddenUnits: o.hiddenUnits,
    seed: o.seed,
    batchSize: o.batchSize,
    trainLimit: o.trainLimit ?? null,
    datasetSize,
    numParams,
    heartbeatTimeout: o.heartbeatTimeout,
  };
}

export function parseJobConfig(raw: unknown): JobConfig {
  const res = jobConfigSchema.safeParse(raw);
  if (!res.success) {
    const i = res.error.issues[0];
    throw new ProtocolError('schema', `join-ack config rejected (schema): ${i?.path.join('.') ?? ''}: ${i?.message ?? 'invalid'}`);
  }
  return res.data;
}

export function sameModel(a: JobConfig, b: JobConfig): boolean {
  return a.model === b.model && a.arch === b.arch && a.latentDim === b.latentDim && a.filters === b.filters && a.hiddenUnits === b.hiddenUnits && a.seed === b.seed && a.trainLimit === b.trainLimit && a.numParams === b.numParams;
}
