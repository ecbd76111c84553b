// What the run loop reports. Metrics, the dashboard, the timeline and the
// progress bar each implement the parts they need; the loop knows none of them.
import type { LossSums } from '../shared/train/core.js';
import type { Member } from './membership.js';

export interface StepPhases {
  /** From publishing the plan to the last part arriving. */
  waitSeconds: number;
  aggregateSeconds: number;
  optimizerSeconds: number;
  broadcastSeconds: number;
  checkpointSeconds: number;
}

export interface PartReport {
  part: number;
  worker: string;
  count: number;
  computeSeconds: number;
  encodeSeconds: number;
  /** Seconds from sending the assignment to the result arriving. */
  roundTripSeconds: number;
}

export interface StepReport {
  term: number;
  step: number;
  epoch: number;
  totalSteps: number;
  stepsPerEpoch: number;
  count: number;
  loss: LossSums;
  seconds: number;
  startedAt: number;
  phases: StepPhases;
  parts: PartReport[];
  workers: number;
  weights: Float32Array;
}

export interface CoordinatorObserver {
  started?(info: { term: number; step: number; totalSteps: number; numParams: number }): void;
  stepCompleted?(r: StepReport): void;
  rejected?(reason: string, sender: string | undefined): void;
  workerJoined?(m: Member, rejoined: boolean): void;
  workerLost?(m: Member, why: string): void;
  membersChanged?(members: Member[]): void;
  straggler?(part: number, slow: string, backup: string): void;
  paused?(paused: boolean, reason: string): void;
  checkpoint?(seconds: number, ok: boolean, path: string | null): void;
  gradientBytes?(direction: 'in' | 'out', n: number): void;
  finished?(): void;
}

/** Fans one report out to several observers. */
export function combineObservers(list: CoordinatorObserver[]): CoordinatorObserver {
  const call = <K extends keyof CoordinatorObserver>(k: K) =>
    ((...args: unknown[]) => {
      for (const o of list) (o[k] as ((...a: unknown[]) => void) | undefined)?.(...args);
    }) as NonNullable<CoordinatorObserver[K]>;
  return {
    started: call('started'),
    stepCompleted: call('stepCompleted'),
    rejected: call('rejected'),
    workerJoined: call('workerJoined'),
    workerLost: call('workerLost'),
    membersChanged: call('membersChanged'),
    straggler: call('straggler'),
    paused: call('paused'),
    checkpoint: call('checkpoint'),
    gradientBytes: call('gradientBytes'),
    finished: call('finished'),
  };
}
