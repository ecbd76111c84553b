// Raw options (CLI strings, environment, or objects from tests) -> one validated,
// defaulted, frozen Options object. Errors name the flag and the allowed values.
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { OPTIONS, envName, type Command, type OptionSpec } from './spec.js';
import type { Options } from './types.js';

export type RawOptions = Record<string, unknown>;

function fieldSchema(spec: OptionSpec): z.ZodTypeAny {
  const range = (): string => {
    if (spec.min !== undefined && spec.max !== undefined) return ` between ${spec.min} and ${spec.max}`;
    if (spec.min !== undefined) return ` >= ${spec.min}`;
    if (spec.max !== undefined) return ` <= ${spec.max}`;
    return '';
  };
  switch (spec.kind) {
    case 'int':
    case 'number': {
      const what = spec.kind === 'int' ? 'an integer' : 'a number';
      let n = z.number({ invalid_type_error: `must be ${what}${range()}` }).finite(`must be ${what}${range()}`);
      if (spec.kind === 'int') n = n.int(`must be ${what}${range()}`);
      if (spec.min !== undefined) n = n.min(spec.min, `must be ${what}${range()}`);
      if (spec.max !== undefined) n = n.max(spec.max, `must be ${what}${range()}`);
      return z.preprocess((v) => {
        if (typeof v === 'string' && v.trim() !== '' && /^[-+0-9.eE]+$/.test(v.trim())) return Number(v);
        return v;
      }, n);
    }
    case 'enum': {
      const values = spec.values ?? [];
      return z.string({ invalid_type_error: `must be one of ${values.join(', ')}` }).refine((v) => values.includes(v), { message: `must be one of ${values.join(', ')}` });
    }
    case 'bool':
      return z.preprocess((v) => {
        if (v === 'true' || v === '1' || v === 'yes') return true;
        if (v === 'false' || v === '0' || v === 'no' || v === '') return false;
        return v;
      }, z.boolean({ invalid_type_error: 'must be true or false' }));
    case 'bool-or-path':
      return z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.union([z.boolean(), z.string().min(1)], { invalid_type_error: 'must be a flag or a path' }));
    case 'string':
      return z.string({ invalid_type_error: 'must be a string' }).min(1, 'must not be empty');
  }
}

function describeValue(spec: OptionSpec, v: unknown): string {
  if (spec.secret === true) return '<hidden>';
  return typeof v === 'string' ? `'${v}'` : JSON.stringify(v);
}

/** Known flags for a command, for "did you mean" hints. */
function suggest(flag: string, command: Command): string {
  const names = OPTIONS.filter((o) => o.commands.includes(command)).map((o) => o.flag);
  const close = names.filter((n) => n.includes(flag) || flag.includes(n) || editDistance(n, flag) <= 2);
  return close.length > 0 ? ` (did you mean --${close.join(', --')}?)` : ` (known: --${names.join(', --')})`;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) (d[0] as number[])[j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[];
      const prev = d[i - 1] as number[];
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return (d[a.length] as number[])[b.length] ?? 0;
}

/**
 * Validates `raw` (keys are flag names like 'batch-size' or keys like 'batchSize')
 * for `command`, fills unset options from `env` (LOCKSTEP_<FLAG>), applies defaults.
 */
export function compileOptions(command: Command, raw: RawOptions, env: Record<string, string | undefined> = {}): Options {
  const byName = new Map<string, OptionSpec>();
  for (const o of OPTIONS) {
    byName.set(o.flag, o);
    byName.set(o.key, o);
  }
  const values: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(raw)) {
    if (v === undefined) continue;
    const spec = byName.get(name);
    if (spec === undefined) throw new ConfigError(`--${name}: unknown option for '${command}'${suggest(name, command)}`, { details: { field: name } });
    if (!spec.commands.includes(command)) {
      throw new ConfigError(`--${spec.flag}: not an option of '${command}' (it applies to: ${spec.commands.join(', ')})`, { details: { field: spec.flag } });
    }
    values[spec.key] = v;
  }
  const viaEnv = new Set<string>();
  for (const spec of OPTIONS) {
    if (!spec.commands.includes(command) || values[spec.key] !== undefined) continue;
    const fromEnv = env[envName(spec.flag)];
    if (fromEnv !== undefined && fromEnv !== '') {
      values[spec.key] = fromEnv;
      viaEnv.add(spec.key);
    }
  }
  const out: Record<string, unknown> = {};
  for (const spec of OPTIONS) {
    if (!spec.commands.includes(command)) continue;
    const v = values[spec.key];
    if (v === undefined) {
      if (spec.default !== undefined) out[spec.key] = spec.default;
      continue;
    }
    const res = fieldSchema(spec).safeParse(v);
    if (!res.success) {
      const msg = res.error.issues[0]?.message ?? 'is invalid';
      const where = viaEnv.has(spec.key) ? `--${spec.flag} (from ${envName(spec.flag)})` : `--${spec.flag}`;
      throw new ConfigError(`${where}: ${msg}; got ${describeValue(spec, v)}`, { details: { field: spec.flag, allowed: spec.values } });
    }
    out[spec.key] = res.data;
  }
  applyDerivedDefaults(command, out);
  crossCheck(command, out);
  return Object.freeze(out) as unknown as Options;
}

function applyDerivedDefaults(command: Command, o: Record<string, unknown>): void {
  if (['train', 'coordinator', 'bench'].includes(command) && o.latentDim === undefined) o.latentDim = o.arch === 'mlp' ? 20 : 16;
  if (command === 'train' || command === 'coordinator') {
    if (o.checkpointDir === undefined) o.checkpointDir = `runs/${String(o.job)}/checkpoints`;
    if (o.metricsPort === undefined) o.metricsPort = 9464;
    if (o.steps === undefined && o.epochs === undefined) o.epochs = 1;
  }
  if (command === 'worker' && o.metricsPort === undefined) o.metricsPort = 0;
}

function crossCheck(command: Command, o: Record<string, unknown>): void {
  const job = o.job;
  if (typeof job === 'string' && !/^[A-Za-z0-9_-]{1,64}$/.test(job)) {
    throw new ConfigError(`--job: must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-' (a NATS subject token); got '${job}'`, { details: { field: 'job' } });
  }
  const wid = o.workerId;
  if (typeof wid === 'string' && !/^[A-Za-z0-9_-]{1,64}$/.test(wid)) {
    throw new ConfigError(`--worker-id: must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-' (a NATS subject token); got '${wid}'`, { details: { field: 'worker-id' } });
  }
  if (o.model === 'ae' && o.arch === 'mlp') {
    throw new ConfigError(`--arch: mlp is available for vae and cvae; --model ae supports conv`, { details: { field: 'arch', allowed: ['conv'] } });
  }
  if ((o.natsTlsCert === undefined) !== (o.natsTlsKey === undefined)) {
    throw new ConfigError(`--nats-tls-cert and --nats-tls-key: give both or neither`, { details: { field: 'nats-tls-cert' } });
  }
  if (o.natsPass !== undefined && o.natsUser === undefined) {
    throw new ConfigError(`--nats-pass: needs --nats-user`, { details: { field: 'nats-pass' } });
  }
  if ((command === 'eval' || command === 'sample') && o.checkpoint === undefined) {
    throw new ConfigError(`--checkpoint: required for '${command}' (a checkpoint directory)`, { details: { field: 'checkpoint' } });
  }
  if (command === 'worker' && o.nats === undefined) {
    throw new ConfigError(`--nats: required for 'worker' (e.g. --nats nats://127.0.0.1:4222 or LOCKSTEP_NATS)`, { details: { field: 'nats' } });
  }
  if (command === 'coordinator' && o.nats === undefined) {
    throw new ConfigError(`--nats: required for 'coordinator' (e.g. --nats nats://127.0.0.1:4222 or LOCKSTEP_NATS)`, { details: { field: 'nats' } });
  }
}

/** Reads the environment the caller passes in: nothing deep in the code touches process.env. */
export function envFrom(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith('LOCKSTEP_')) out[k] = v;
  return out;
}
