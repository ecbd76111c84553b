// What every bench part gets: mode, output and scratch folders, progress, and
// the one nats-server of the run (started on first use, stopped at the end).
import * as path from 'node:path';
import { startEmbeddedNats, type EmbeddedNats } from '../../cli/nats-server.js';

export interface BenchContext {
  quick: boolean;
  /** runs/bench/<timestamp>: results.json, results.md, plots, sample grids. */
  outDir: string;
  /** Scratch space (checkpoints, timelines); removed at the end. */
  workDir: string;
  say: (line: string) => void;
  /** URL of the run's nats-server. */
  natsUrl(): Promise<string>;
  /** A fresh job id (NATS subject prefix), so runs on the shared server never see each other. */
  job(name: string): string;
  /** Scratch path. */
  scratch(name: string): string;
}

/** What a part hands back: its figures, its markdown section, its plot files. */
export interface PartOutput {
  results: unknown;
  markdown: string;
  plots: string[];
}

export function createContext(opts: { quick: boolean; outDir: string; workDir: string; say: (line: string) => void }): BenchContext & { close(): Promise<void> } {
  let nats: Promise<EmbeddedNats> | null = null;
  let jobs = 0;
  return {
    quick: opts.quick,
    outDir: opts.outDir,
    workDir: opts.workDir,
    say: opts.say,
    natsUrl: async () => {
      nats ??= startEmbeddedNats();
      return (await nats).url;
    },
    job: (name) => `bench-${name.replace(/[^A-Za-z0-9_-]/g, '-')}-${++jobs}`,
    scratch: (name) => path.join(opts.workDir, name),
    close: async () => {
      if (nats !== null) await (await nats).stop();
    },
  };
}
