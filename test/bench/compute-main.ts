// node dist/test/bench/compute-main.js [--quick] [--json] [--repeats N]
import { benchCompute, type ComputeBenchResult } from './compute.js';

function table(r: ComputeBenchResult): string {
  const out: string[] = [];
  out.push(`backend: ${r.backend.name} ${r.backend.version} on ${r.backend.device}${r.quick ? '  (quick: tiny sizes)' : ''}`);
  out.push(`load average (1 min) before/after: ${r.loadAverageBefore[0]?.toFixed(2)} / ${r.loadAverageAfter[0]?.toFixed(2)}`);
  out.push('');
  out.push('training step (setFlatWeights + gradientSum), median of repeats');
  out.push(`${'model'.padEnd(10)} ${'batch'.padStart(5)} ${'params'.padStart(8)} ${'ms/step'.padStart(8)} ${'best'.padStart(7)} ${'samples/s'.padStart(10)} ${'best'.padStart(7)}`);
  for (const s of r.steps) {
    out.push(`${s.model.padEnd(10)} ${String(s.batch).padStart(5)} ${String(s.params).padStart(8)} ${s.msMedian.toFixed(1).padStart(8)} ${s.msMin.toFixed(1).padStart(7)} ${s.samplesPerSecond.toFixed(0).padStart(10)} ${s.samplesPerSecondBest.toFixed(0).padStart(7)}`);
  }
  out.push('');
  out.push('conv kernels, 3x3 stride 1 same, GFLOP/s (ms)');
  out.push(`${'layer'.padEnd(32)} ${'forward'.padStart(14)} ${'filter grad'.padStart(14)} ${'input grad'.padStart(14)}  strategy`);
  const cell = (t: { gflops: number; msMedian: number }): string => `${t.gflops.toFixed(1)} (${t.msMedian.toFixed(1)})`.padStart(14);
  for (const c of r.convs) {
    out.push(`${`${c.layer} B${c.batch}`.padEnd(32)} ${cell(c.forward)} ${cell(c.filterGrad)} ${cell(c.inputGrad)}  ${c.filterGrad.strategy}`);
  }
  const t = r.convTotals;
  out.push(`${'conv ae layers, FLOP-weighted'.padEnd(32)} ${t.forwardGflops.toFixed(1).padStart(14)} ${t.filterGradGflops.toFixed(1).padStart(14)} ${t.inputGradGflops.toFixed(1).padStart(14)}`);
  out.push(`filter grad / forward: ${t.filterToForwardRatio.toFixed(2)}`);
  if (r.targets !== null) {
    out.push('');
    for (const g of r.targets) out.push(`${g.met ? 'MET ' : 'MISS'} ${g.name}: ${g.value.toFixed(g.floor < 10 ? 2 : 0)} (floor ${g.floor})`);
  }
  return out.join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const json = args.includes('--json');
  const ri = args.indexOf('--repeats');
  const repeats = ri >= 0 ? Number(args[ri + 1]) : undefined;
  const result = await benchCompute({ quick, ...(repeats !== undefined ? { repeats } : {}), onProgress: (l) => process.stderr.write(`${l}\n`) });
  process.stdout.write(json ? `${JSON.stringify(result)}\n` : `${table(result)}\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  });
}

export { table as formatComputeBench };
