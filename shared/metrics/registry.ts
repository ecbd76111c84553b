// One Registry per role instance (never prom-client's global one), so tests and
// an in-process launcher can hold several side by side.
import { Registry, collectDefaultMetrics } from 'prom-client';

/**
 * prom-client's default metrics include gauges whose names end in `_total`;
 * `promtool check metrics` flags those (the suffix is reserved for counters).
 * Their information is already in the per-type gauges without the suffix.
 */
export const PROMTOOL_FLAGGED_DEFAULT_METRICS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
] as const;

export interface MetricsRegistryOptions {
  /** Process metrics (CPU, memory, event loop, GC). Default true. */
  defaultMetrics?: boolean;
  /** Labels added to every series, e.g. `{ role: 'worker' }`. Keep them low-cardinality. */
  defaultLabels?: Record<string, string>;
}

export function createMetricsRegistry(options: MetricsRegistryOptions = {}): Registry {
  const registry = new Registry();
  if (options.defaultLabels !== undefined) registry.setDefaultLabels(options.defaultLabels);
  if (options.defaultMetrics !== false) {
    collectDefaultMetrics({ register: registry });
    for (const name of PROMTOOL_FLAGGED_DEFAULT_METRICS) {
      if (registry.getSingleMetric(name) !== undefined) registry.removeSingleMetric(name);
    }
  }
  return registry;
}

export type { Registry };
