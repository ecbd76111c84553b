// The `train --json` contract (DESIGN.md section 6).
import type { LossSums } from './core.js';

export interface TrainResult {
  model: string;
  arch: string;
  backend: string;
  workers: number;
  steps: number;
  epochs: number;
  samples: number;
  wallSeconds: number;
  samplesPerSecond: number;
  finalLoss: { total: number; reconstruction: number; kl?: number };
  losses: number[];
  gradientBytes: number;
  checkpoint: string | null;
  /** Extra detail: first step of this process (non-zero after a resume), and the final weights' checksum. */
  startStep: number;
  weightsSha256: string;
}

export function finalLossOf(model: string, loss: LossSums): TrainResult['finalLoss'] {
  return model === 'ae' ? { total: loss.total, reconstruction: loss.reconstruction } : { total: loss.total, reconstruction: loss.reconstruction, kl: loss.kl };
}
