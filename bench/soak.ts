/**
 * `npm run bench -- soak`: does webq hold flat memory over thousands of calls? Many generate calls
 * of varied lengths and options, embed batches of varied sizes, chats that fill and truncate a
 * small context, and load/dispose cycles (bench/lib/soak.ts says what each phase varies), with
 * GPU bytes (pool, owned by models, uniforms), cached bind groups and uniforms (and how many were
 * created: churn), JS heap and RSS every --every calls, then each phase's slope after the warm-up
 * in percent per 1,000 calls. Targets: GPU bytes and RSS slopes under 1% per 1,000 calls, nothing
 * created after the warm-up, zero bytes left by a disposed model.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fmt, table, type BenchIO } from './lib/measure.ts';
import { PHASES, runSoak, type Phase, type SoakSample } from './lib/soak.ts';

const USAGE = `usage: npm run bench -- soak [--json] [--quick] [--generate 2000] [--embed 2000] [--chat 400] [--load 200] [--every 100] [--warmup 200]
  --generate, --embed, --chat, --load   calls per phase (the issue's full run: 2000, 2000, 400, 200)
  --quick        200, 200, 80, 40
  --every N      sample every N calls of a phase (default 100)
  --warmup N     calls of each phase left out of the slopes (default 200; --quick 100)
  --json         only JSON on stdout: { adapter, options, samples, phases, dispose }
`;

const MB = (b: number) => (b / 2 ** 20).toFixed(2);
const pct = (x: number | null) => (x === null ? '-' : `${x >= 0 ? '+' : ''}${x.toFixed(2)}%`);

function sampleRow(s: SoakSample): string[] {
  return [s.phase, String(s.calls), MB(s.pool_bytes), MB(s.owned_bytes), MB(s.uniform_bytes), MB(s.gpu_bytes), String(s.bind_groups), `+${s.bind_groups_created}`, String(s.uniforms), `+${s.uniforms_created}`, MB(s.heap_bytes), MB(s.rss_bytes), fmt(s.ms / 1000)];
}
const SAMPLE_HEADERS = ['phase', 'calls', 'pool MB', 'owned MB', 'unif MB', 'GPU MB', 'bind groups', 'new', 'uniforms', 'new', 'heap MB', 'RSS MB', 's'];

export async function run(args: string[], io: BenchIO): Promise<number> {
  let v: Record<string, string | boolean | undefined>;
  const counts = {} as Record<Phase, number>;
  let every: number;
  let warmup: number;
  try {
    v = parseArgs({ args, options: { json: { type: 'boolean' }, quick: { type: 'boolean' }, help: { type: 'boolean' }, generate: { type: 'string' }, embed: { type: 'string' }, chat: { type: 'string' }, load: { type: 'string' }, every: { type: 'string' }, warmup: { type: 'string' } } }).values;
    const count = (name: string, fallback: number, min = 0) => {
      const x = Number(v[name] ?? fallback);
      if (!Number.isInteger(x) || x < min) throw new Error(`--${name} must be an integer >= ${min}, got ${JSON.stringify(v[name])}`);
      return x;
    };
    const full = { generate: 2000, embed: 2000, chat: 400, load: 200 };
    const quick = { generate: 200, embed: 200, chat: 80, load: 40 };
    for (const p of PHASES) counts[p] = count(p, (v.quick ? quick : full)[p]);
    every = count('every', 100, 1);
    warmup = count('warmup', v.quick ? 100 : 200);
  } catch (e) {
    io.stderr(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (v.help) {
    io.stdout(USAGE);
    return 0;
  }
  const dir = await mkdtemp(join(tmpdir(), 'webq-soak-'));
  try {
    io.stderr(`soak: ${PHASES.map((p) => `${counts[p]} ${p}`).join(', ')}; a sample every ${every} calls, slopes after ${warmup}\n`);
    io.stderr(`${table(SAMPLE_HEADERS, [], 2).trimEnd()}\n`);
    const r = await runSoak({ counts, every, warmup, dir, onSample: (s) => io.stderr(`${table(SAMPLE_HEADERS, [sampleRow(s)], 2).split('\n')[2]}\n`) });
    const summary = table(
      ['phase', 'calls', 'GPU slope', 'RSS slope', 'heap slope', 'bind groups made', 'uniforms made', 'ms/call'],
      r.phases.map((p) => [p.phase, String(p.calls), pct(p.gpu_slope_pct), pct(p.rss_slope_pct), pct(p.heap_slope_pct), String(p.bind_groups_created_after_warmup), String(p.uniforms_created_after_warmup), fmt(p.ms_per_call)]),
    );
    const text = `\n${table(SAMPLE_HEADERS, r.samples.map(sampleRow), 2)}\nslopes per 1,000 calls after the first ${r.options.warmup} of each phase; "made": created after it\n${summary}` +
      `dispose(): ${r.dispose.checked} load/dispose cycles, most bytes left behind by one: ${r.dispose.max_bytes_left}\nadapter: ${r.adapter}\n`;
    if (v.json) {
      io.stderr(text);
      io.stdout(`${JSON.stringify(r)}\n`);
    } else io.stdout(text);
    return 0;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
