// One step's bookkeeping: the parts of the global batch, who is assigned to
// each, and the first valid result of each. Assignment changes (lost worker,
// straggler backup, re-request) never change a part's images, so the step's
// math is fixed the moment the round is created.
import type { PartResult } from '../shared/train/core.js';

export interface PartState {
  part: number;
  indices: Int32Array;
  /** Workers asked to compute this part (a backup copy adds a second). */
  assigned: string[];
  attempt: number;
  /** When the latest assignment of this part was published. */
  sentAt: number;
  startedAt: number;
  result: PartResult | null;
  doneBy: string | null;
  seconds: number;
  backedUp: boolean;
}

export class StepRound {
  readonly parts: PartState[];
  readonly startedAt: number;

  constructor(
    readonly term: number,
    readonly step: number,
    readonly epoch: number,
    readonly globalCount: number,
    slices: Int32Array[],
    workers: string[],
    now: number,
  ) {
    this.startedAt = now;
    this.parts = [];
    slices.forEach((indices, i) => {
      if (indices.length === 0) return;
      this.parts.push({ part: i, indices, assigned: [workers[i] as string], attempt: 0, sentAt: now, startedAt: now, result: null, doneBy: null, seconds: 0, backedUp: false });
    });
  }

  get(part: number): PartState | undefined {
    return this.parts.find((p) => p.part === part);
  }

  pending(): PartState[] {
    return this.parts.filter((p) => p.result === null);
  }

  complete(): boolean {
    return this.parts.every((p) => p.result !== null);
  }

  results(): PartResult[] {
    return this.parts.map((p) => p.result).filter((r): r is PartResult => r !== null);
  }

  /** Parts still open that `worker` is assigned to. */
  openFor(worker: string): PartState[] {
    return this.parts.filter((p) => p.result === null && p.assigned.includes(worker));
  }

  /** Median seconds of the finished parts, or undefined before any finished. */
  medianSeconds(): number | undefined {
    const s = this.parts.filter((p) => p.result !== null).map((p) => p.seconds).sort((a, b) => a - b);
    if (s.length === 0) return undefined;
    return s[Math.floor((s.length - 1) / 2)];
  }
}
