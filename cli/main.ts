// The one entry point: parse the subcommand, compile the options, hand over.
import { compileOptions, envFrom } from '../shared/config/compile.js';
import { parseArgv } from '../shared/config/argv.js';
import { flagTableMarkdown, helpText } from '../shared/config/flag-table.js';
import { ConfigError, LockstepError } from '../shared/errors.js';
import { createRootLogger, roleLogger } from '../shared/logger.js';
import { selectBackend } from '../shared/compute/backend.js';
import { trainInProcess } from '../shared/train/reference.js';
import { createProgress, type Progress } from '../shared/progress.js';
import { runCoordinatorMain } from '../coordinator/main.js';
import { runWorkerMain } from '../worker/main.js';
import { defaultWorkerId } from '../worker/worker.js';
import { launch } from './launcher.js';
import { evaluateCheckpoint, sampleCheckpoint } from './evaluate.js';

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'bench' && !argv.includes('--help')) {
    // The bench takes part names as positionals (`lockstep bench scaling quality --quick`).
    const bench = (await import('../test/bench/main.js')) as { runBench: (argv: string[]) => Promise<number> };
    return bench.runBench(argv.slice(1));
  }
  let parsed;
  try {
    parsed = parseArgv(argv);
    if (parsed.help) {
      process.stdout.write(argv.includes('--markdown') ? `${flagTableMarkdown()}\n` : `${helpText(argv[0] === '--help' || argv[0] === undefined || argv[0] === 'help' ? undefined : parsed.command)}\n`);
      return 0;
    }
  } catch (err) {
    return fail(err);
  }
  let o;
  try {
    o = compileOptions(parsed.command, parsed.raw, envFrom(process.env));
  } catch (err) {
    return fail(err);
  }
  const root = createRootLogger({ level: o.logLevel });
  const env = envFrom(process.env);
  try {
    switch (parsed.command) {
      case 'train': {
        const log = roleLogger(root, { role: o.workers === 0 ? 'trainer' : 'launcher', job: o.job });
        if (o.workers > 0) return await launch(o, { log, raw: parsed.raw, env: process.env, stdout: process.stdout });
        const backend = await selectBackend({ backend: o.backend, log });
        let progress: Progress | null = null;
        let lastLog = 0;
        const rate = { t: performance.now(), n: 0 };
        const result = await trainInProcess(o, {
          log,
          backendName: backend.name,
          onStep: (r) => {
            if (progress === null) {
              // Created at the first step, when the total (and a resumed run's start) is known.
              progress = createProgress({ total: r.totalSteps, startStep: r.step, enabled: o.progress ?? process.stderr.isTTY === true });
            }
            rate.n += r.outcome.count;
            const sps = (rate.n / (performance.now() - rate.t)) * 1000;
            progress.update({ step: r.step + 1, epoch: r.epoch + 1, loss: r.outcome.loss.total, samplesPerSecond: sps, workers: 0 });
            if (!progress.enabled && (Date.now() - lastLog > 2000 || r.step + 1 === r.totalSteps)) {
              lastLog = Date.now();
              log.info({ step: r.step + 1, totalSteps: r.totalSteps, epoch: r.epoch, loss: r.outcome.loss, samplesPerSecond: Math.round(sps) }, 'progress');
            }
          },
        });
        (progress as Progress | null)?.stop();
        const { weights: _w, ...json } = result;
        if (o.json === true) process.stdout.write(`${JSON.stringify(json)}\n`);
        else log.info({ steps: json.steps, samplesPerSecond: Math.round(json.samplesPerSecond), finalLoss: json.finalLoss }, 'training finished');
        return 0;
      }
      case 'coordinator': {
        const log = roleLogger(root, { role: 'coordinator', job: o.job, worker: 'coord' });
        await runCoordinatorMain(o, { log, env, stdout: process.stdout, isTTY: process.stderr.isTTY === true });
        return 0;
      }
      case 'worker': {
        const log = roleLogger(root, { role: 'worker', job: o.job, worker: o.workerId ?? defaultWorkerId() });
        await runWorkerMain(o, { log });
        return 0;
      }
      case 'eval': {
        const log = roleLogger(root, { role: 'tool', job: o.job ?? 'eval' });
        await selectBackend({ backend: o.backend, log });
        const r = evaluateCheckpoint(o, log);
        process.stdout.write(o.json === true ? `${JSON.stringify(r)}\n` : `${formatEval(r)}\n`);
        return 0;
      }
      case 'sample': {
        const log = roleLogger(root, { role: 'tool', job: 'sample' });
        await selectBackend({ backend: o.backend, log });
        const r = sampleCheckpoint(o, log);
        process.stdout.write(o.json === true ? `${JSON.stringify(r)}\n` : `wrote ${r.files.join(', ')}\n`);
        return 0;
      }
      case 'bench':
        return 2; // dispatched before option parsing
    }
  } catch (err) {
    root.error({ err }, 'failed');
    return fail(err);
  }
}

function formatEval(r: ReturnType<typeof evaluateCheckpoint>): string {
  const lines = [`checkpoint ${r.checkpoint} (step ${r.step}), ${r.images} test images`, `reconstruction ${r.reconstruction.toFixed(3)} per image`];
  if (r.negElbo !== undefined) lines.push(`negative ELBO ${r.negElbo.toFixed(3)} nats per image (KL ${r.kl?.toFixed(3)})`);
  return lines.join('\n');
}

function fail(err: unknown): number {
  if (err instanceof ConfigError) {
    process.stderr.write(`lockstep: ${err.message}\n`);
    return 2;
  }
  if (err instanceof LockstepError) {
    process.stderr.write(`lockstep: ${err.message}\n`);
    return 1;
  }
  process.stderr.write(`lockstep: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return 1;
}
