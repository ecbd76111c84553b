// `bench compute` (issue 2 item 7): benchCompute's figures as a report section.
import { benchCompute, type ComputeBenchResult } from './compute.js';
import type { BenchContext, PartOutput } from './context.js';
import { fmt, table, targetLine } from './markdown.js';

export async function runComputePart(ctx: BenchContext): Promise<PartOutput> {
  const r = await benchCompute({ quick: ctx.quick, onProgress: (l) => ctx.say(`[compute] ${l}`) });
  return { results: r, markdown: computeMarkdown(r), plots: [] };
}

export function computeMarkdown(r: ComputeBenchResult): string {
  const out: string[] = [];
  out.push(`Backend ${r.backend.name} ${r.backend.version} on ${r.backend.device}; one process, one core. Load average (1 min) before/after: ${fmt(r.loadAverageBefore[0] ?? NaN)} / ${fmt(r.loadAverageAfter[0] ?? NaN)}.${r.quick ? ' **Quick run: tiny sizes.**' : ''}`);
  out.push('');
  out.push('One training step (setFlatWeights + gradientSum, what a worker does per part), median of repeats:');
  out.push('');
  out.push(table(
    ['model', 'batch', 'parameters', 'ms/step', 'best ms', 'samples/s', 'best samples/s'],
    r.steps.map((s) => [s.model, s.batch, s.params, fmt(s.msMedian, 1), fmt(s.msMin, 1), fmt(s.samplesPerSecond, 0), fmt(s.samplesPerSecondBest, 0)]),
  ));
  out.push('');
  out.push('Conv kernels (3x3, stride 1, same), GFLOP/s (median ms):');
  out.push('');
  const cell = (t: { gflops: number; msMedian: number }): string => `${fmt(t.gflops, 1)} (${fmt(t.msMedian, 1)})`;
  out.push(table(
    ['layer', 'batch', 'forward', 'filter gradient', 'input gradient', 'filter-gradient strategy'],
    [
      ...r.convs.map((c) => [c.layer, c.batch, cell(c.forward), cell(c.filterGrad), cell(c.inputGrad), c.filterGrad.strategy]),
      ['conv ae layers, FLOP-weighted', '', fmt(r.convTotals.forwardGflops, 1), fmt(r.convTotals.filterGradGflops, 1), fmt(r.convTotals.inputGradGflops, 1), ''],
    ],
  ));
  out.push('');
  out.push(`Filter gradient / forward GFLOP/s: **${fmt(r.convTotals.filterToForwardRatio, 2)}**.`);
  if (r.targets !== null) {
    out.push('');
    for (const t of r.targets) out.push(targetLine({ name: t.name, value: t.value, floor: t.floor, met: t.met, text: fmt(t.value, t.floor < 10 ? 2 : 0) }));
  }
  return out.join('\n');
}
