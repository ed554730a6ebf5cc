/**
 * `webq eval MODEL --text FILE [--dtype D | --quantized DIR] ...`: a quantized model against its
 * float original on a text (src/api/evaluate.ts), one row per dtype or folder, before shipping it.
 */
import { evaluate, type EvaluateOptions, type EvaluateResult } from '../api/evaluate.ts';
import { loadFs } from '../io/node-fs.ts';
import { KV_DTYPES, type KvDType } from '../ops/kv-cache.ts';
import { UsageError, type Command } from './command.ts';
import { CACHE_FLAGS, CACHE_HELP, loadOptions, numberOption, oneModel, parseArgs, parseDtype, type ModelCliIO } from './model-args.ts';
import { progressLine } from './progress.ts';

const USAGE = `usage: webq eval <model> --text FILE [--dtype D[,D...] | --quantized DIR ...] [options]

Runs the float model (f32) and a quantized one over FILE on the GPU and prints how far apart they
are. <model> is the float checkpoint (a folder, folder URL or hub id).

  decoders (Llama, Mistral, Qwen2/3)  FILE is one token stream, cut into chunks of --context
        tokens (after the tokenizer's prefix, e.g. BOS); per position: KL(float || quantized)
        of the next-token distributions (mean and 99th percentile), top-1 agreement, and each
        model's perplexity on the tokens that came next (delta-ppl = quantized - float)
  encoders (BERT)  each non-empty line of FILE is one text: cosine of the float and quantized
        embeddings, mean and minimum

options:
  --text FILE             the evaluation text (use text the model was not calibrated on)
  --dtype D[,D...]        quantize the float model at load: q8, q4 (default), f16, w8a8, w4a8;
                          several give one row each (repeatable)
  --quantized DIR         compare with a quantized folder (webq quantize's, or a GPTQ/AWQ/...
                          checkpoint) instead; repeatable
  --kv K                  decoders: the quantized model's KV cache (f16, f32, int8)
  --context N             decoders: tokens per chunk (default 512, at most the model's)
  --max-chunks N          decoders: stop after N chunks
  --json                  print the results as JSON (one object, "rows" in order)
  --revision R            hub branch, tag or commit (default main)
${CACHE_HELP}
  -h, --help`;

function row(name: string, r: EvaluateResult): string {
  if (r.kind === 'encoder') return `${name.padEnd(18)} ${r.cosine!.mean.toFixed(6).padStart(11)} ${r.cosine!.min.toFixed(6).padStart(11)}`;
  const p = r.perplexity!;
  const pct = (100 * p.delta) / p.float;
  return [
    name.padEnd(18),
    p.quantized.toFixed(4).padStart(10),
    `${p.delta >= 0 ? '+' : ''}${p.delta.toFixed(4)}`.padStart(10),
    `${pct >= 0 ? '+' : ''}${pct.toFixed(2)}%`.padStart(8),
    r.kl!.mean.toExponential(3).padStart(10),
    r.kl!.p99.toExponential(3).padStart(10),
    `${(100 * r.top1!).toFixed(2)}%`.padStart(8),
  ].join(' ');
}

export const evalCommand: Command = {
  summary: 'compare a quantized model with its float original on a text (KL, perplexity, cosine)',
  usage: USAGE,
  async run(args, io: ModelCliIO) {
    const p = parseArgs('eval', args, { flags: ['--json', ...CACHE_FLAGS], values: ['--text', '--dtype', '--quantized', '--kv', '--context', '--max-chunks', '--revision'] });
    const model = oneModel('eval', p);
    const file = p.values.get('--text');
    if (file === undefined) throw new UsageError('eval: --text FILE is required (the text to evaluate on)');
    const dtypes = (p.lists.get('--dtype') ?? []).flatMap((v) => v.split(',')).map((d) => parseDtype('eval', d.trim())!);
    if (dtypes.includes('f32')) throw new UsageError('eval: --dtype f32 is the float model itself; compare f16, q8, q4, w8a8 or w4a8');
    const dirs = p.lists.get('--quantized') ?? [];
    if (!dtypes.length && !dirs.length) dtypes.push('q4');
    const kv = p.values.get('--kv');
    if (kv !== undefined && !(KV_DTYPES as readonly string[]).includes(kv)) throw new UsageError(`eval: --kv ${JSON.stringify(kv)}: expected one of ${KV_DTYPES.join(', ')}`);
    const contextLength = numberOption('eval', p, '--context', (n) => Number.isSafeInteger(n) && n >= 2, 'an integer of at least 2');
    const maxChunks = numberOption('eval', p, '--max-chunks', (n) => Number.isSafeInteger(n) && n >= 1, 'a positive integer');
    let text: string;
    try {
      text = await (await loadFs(file)).readFile(file, 'utf8');
    } catch (e) {
      throw new UsageError(`eval: --text ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    // --dtype is a list here; the other shared options as every model command reads them.
    const { dtype: _d, ...hub } = loadOptions('eval', { ...p, values: new Map([...p.values].filter(([k]) => k !== '--dtype')) });
    const base: Omit<EvaluateOptions, 'dtype' | 'quantized'> = {
      ...hub, text, ...(kv !== undefined && { kv: kv as KvDType }), contextLength, maxChunks, ...(io.gpuContext && { context: io.gpuContext }),
    };
    const runs: { name: string; opts: EvaluateOptions }[] = [
      ...dtypes.map((d) => ({ name: d, opts: { ...base, dtype: d } })),
      ...dirs.map((q) => ({ name: q, opts: { ...base, quantized: q } })),
    ];
    const rows: { name: string; result: EvaluateResult }[] = [];
    const bar = progressLine(io);
    try {
      for (const r of runs) rows.push({ name: r.name, result: await evaluate(model, { ...r.opts, onProgress: (d, t) => bar.update(`eval ${r.name}`.slice(0, 24), d, t) }) });
    } finally {
      bar.clear();
    }
    if (p.flags.has('--json')) {
      io.stdout(`${JSON.stringify({ model, text: file, rows: rows.map((r) => ({ name: r.name, ...r.result })) })}\n`);
      return 0;
    }
    const first = rows[0].result;
    if (first.kind === 'encoder') {
      io.stdout(`${first.model}: ${first.texts} texts (lines of ${file}), embedding cosine against f32\n`);
      io.stdout(`${'quantized'.padEnd(18)} ${'mean cos'.padStart(11)} ${'min cos'.padStart(11)}\n`);
    } else {
      io.stdout(`${first.model}: ${first.tokens} tokens of ${file} in ${first.chunks} chunks of up to ${first.contextLength}; f32 perplexity ${first.perplexity!.float.toFixed(4)}\n`);
      io.stdout(`${'quantized'.padEnd(18)} ${'ppl'.padStart(10)} ${'delta-ppl'.padStart(10)} ${''.padStart(8)} ${'KL mean'.padStart(10)} ${'KL p99'.padStart(10)} ${'top-1'.padStart(8)}\n`);
    }
    for (const r of rows) io.stdout(`${row(r.name, r.result)}\n`);
    return 0;
  },
};
