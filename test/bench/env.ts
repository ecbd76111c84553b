// What machine and software the figures come from: printed first, stored in results.json.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { selectBackend } from '../../shared/compute/backend.js';
import { findNatsServer } from '../../cli/nats-server.js';

export interface MachineInfo {
  date: string;
  hostname: string;
  platform: string;
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  loadAverage: number[];
  node: string;
  backend: { name: string; version: string; device: string };
  versions: Record<string, string>;
  natsServer: string;
  gitCommit: string | null;
}

function packageVersion(name: string): string {
  try {
    const p = require.resolve(`${name}/package.json`);
    return (JSON.parse(readFileSync(p, 'utf8')) as { version: string }).version;
  } catch {
    // Packages whose exports hide package.json: find it next to the entry point.
    try {
      let dir = path.dirname(require.resolve(name));
      for (let i = 0; i < 5; i++) {
        try {
          const pj = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version: string };
          if (pj.name === name) return pj.version;
        } catch {
          // keep looking upwards
        }
        dir = path.dirname(dir);
      }
    } catch {
      // not installed
    }
    return 'not installed';
  }
}

function commandOutput(cmd: string, args: string[], cwd?: string): string | null {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000, ...(cwd === undefined ? {} : { cwd }) });
  if (r.status !== 0) return null;
  return `${r.stdout}${r.stderr}`.trim();
}

/** The package root (dist/test/bench -> root). */
export function packageRoot(): string {
  return path.resolve(__dirname, '..', '..', '..');
}

/** The checkout the run was started from (cwd first: the suite may run from a copy of dist/), marked when it has uncommitted changes. */
function gitCommit(): string | null {
  for (const dir of [process.cwd(), packageRoot()]) {
    const head = commandOutput('git', ['rev-parse', '--short', 'HEAD'], dir);
    if (head === null) continue;
    const dirty = (commandOutput('git', ['status', '--porcelain', '--untracked-files=no'], dir) ?? '') !== '';
    return dirty ? `${head} + uncommitted changes` : head;
  }
  return null;
}

export async function machineInfo(): Promise<MachineInfo> {
  const backend = await selectBackend({ backend: 'auto' });
  const cpus = os.cpus();
  let nats = 'not found';
  try {
    nats = (commandOutput(findNatsServer(), ['--version']) ?? 'unknown').replace(/^nats-server:\s*/, 'nats-server ');
  } catch {
    // reported as not found
  }
  const ownVersion = (JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  return {
    date: new Date().toISOString(),
    hostname: os.hostname(),
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: os.loadavg(),
    node: process.version,
    backend: { name: backend.name, version: backend.version, device: backend.device },
    versions: {
      lockstep: ownVersion,
      '@tensorflow/tfjs': packageVersion('@tensorflow/tfjs'),
      '@tensorflow/tfjs-backend-wasm': packageVersion('@tensorflow/tfjs-backend-wasm'),
      nats: packageVersion('nats'),
      'vega-lite': packageVersion('vega-lite'),
      '@resvg/resvg-js': packageVersion('@resvg/resvg-js'),
    },
    natsServer: nats,
    gitCommit: gitCommit(),
  };
}

export function formatMachine(m: MachineInfo): string {
  return [
    `date        ${m.date}`,
    `machine     ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.platform}`,
    `load        ${m.loadAverage.map((x) => x.toFixed(2)).join(' ')} (1, 5, 15 min)`,
    `backend     ${m.backend.name} ${m.backend.version} on ${m.backend.device}`,
    `versions    node ${m.node}, ${Object.entries(m.versions).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    `broker      ${m.natsServer}`,
    `commit      ${m.gitCommit ?? 'unknown'}`,
  ].join('\n');
}
