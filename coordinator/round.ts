// One step's bookkeeping: the parts of the global batch, who is assigned to
// each, and the first valid result of each. Assignment changes (lost worker,
// straggler backup, re-request) never change a part's images, so the step's
// math is fixed the moment the round is created.
import { InternalError } from '../shared/errors.js';
import type { PartResult } from '../shared/train/core.js';

/** Which worker's result covered which images of an applied step (the coverage log line). */
export interface PartCoverage {
  part: number;
  worker: string;
  count: number;
  indices: number[];
}

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

  /**
   * The invariant checked before every apply: every part holds exactly one
   * accepted result, for its own part number and of as many images as the part,
   * and the parts together are `slice` (the planner's global batch of this step)
   * with each image exactly once. Throws InternalError otherwise, so a bug in
   * recovery can never silently drop or double an image.
   */
  coverage(slice: ArrayLike<number>): PartCoverage[] {
    const out: PartCoverage[] = [];
    const seen = new Map<number, number>();
    for (const p of this.parts) {
      const r = p.result;
      if (r === null) throw new InternalError(`step ${this.step}: part ${p.part} has no result at apply time`);
      if (r.part !== p.part) throw new InternalError(`step ${this.step}: part ${p.part} holds the result of part ${r.part}`);
      if (r.count !== p.indices.length) throw new InternalError(`step ${this.step}: part ${p.part} has ${p.indices.length} images, its result counts ${r.count}`);
      for (const i of p.indices) seen.set(i, (seen.get(i) ?? 0) + 1);
      out.push({ part: p.part, worker: p.doneBy ?? '', count: r.count, indices: Array.from(p.indices) });
    }
    const want = new Map<number, number>();
    for (let k = 0; k < slice.length; k++) want.set(slice[k] as number, (want.get(slice[k] as number) ?? 0) + 1);
    for (const [i, n] of want) if (n !== 1) throw new InternalError(`step ${this.step}: image ${i} appears ${n} times in the planned global batch`);
    for (const [i, n] of seen) {
      if (n !== 1) throw new InternalError(`step ${this.step}: image ${i} is covered by ${n} parts`);
      if (!want.has(i)) throw new InternalError(`step ${this.step}: image ${i} is not in the step's global batch`);
    }
    if (seen.size !== want.size) throw new InternalError(`step ${this.step}: the parts cover ${seen.size} distinct images, the global batch has ${want.size}`);
    if (this.parts.length === 0 || out.reduce((a, c) => a + c.count, 0) !== this.globalCount) throw new InternalError(`step ${this.step}: results count ${out.reduce((a, c) => a + c.count, 0)} images, the global batch ${this.globalCount}`);
    return out;
  }

  /** Median seconds of the finished parts, or undefined before any finished. */
  medianSeconds(): number | undefined {
    const s = this.parts.filter((p) => p.result !== null).map((p) => p.seconds).sort((a, b) => a - b);
    if (s.length === 0) return undefined;
    return s[Math.floor((s.length - 1) / 2)];
  }
}
