// node dist/test/bench/faults-main.js [--quick] [--json]
// Runs every fault scenario with real processes and prints the markdown table
// (or the rows as JSON). Exit status 1 when a scenario broke an invariant.
import { benchFaults, faultsTable } from './faults.js';

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const rows = await benchFaults({ quick, onProgress: (l) => process.stderr.write(`[faults] ${l}\n`) });
  process.stdout.write(args.includes('--json') ? `${JSON.stringify(rows)}\n` : `${faultsTable(rows)}\n`);
  return rows.every((r) => r.ok || r.note.startsWith('skipped')) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
