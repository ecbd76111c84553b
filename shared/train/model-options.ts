import type { Options } from '../config/types.js';
import type { ModelOptions } from '../models/types.js';

/** The model-shaping subset of the options; the coordinator ships it to workers at join. */
export function modelOptionsOf(o: Pick<Options, 'model' | 'arch' | 'latentDim' | 'filters' | 'hiddenUnits' | 'seed'>): ModelOptions {
  return { kind: o.model, arch: o.arch, latentDim: o.latentDim, filters: o.filters, hiddenUnits: o.hiddenUnits, seed: o.seed };
}
