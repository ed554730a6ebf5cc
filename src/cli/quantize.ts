/**
 * `webq quantize <model> --dtype q4 --out DIR`: writes a pre-quantized copy of a BERT or
 * LLaMA-family checkpoint (smaller download, no quantization at load) that the other commands,
 * BertModel.load and LlmModel.load read with no extra options. Methods past round-to-nearest,
 * mixed precision, static activations, SmoothQuant and the accuracy guard run the model on the
 * GPU first (src/quantize/calibrated.ts).
 */
import { WebqError } from '../errors.ts';
import { openModelFiles } from '../io/hub/hub.ts';
import { loadFs } from '../io/node-fs.ts';
import { quantizeCheckpoint, QUANTIZE_DTYPES, type QuantizeDType, type QuantizeOptions, type QuantizeReport } from '../quantize/checkpoint.ts';
import { QUANT_METHODS, type QuantMethod } from '../quantize/methods.ts';
import { archFor } from '../models/archs.ts';
import { EMBEDDING_DTYPES, type EmbeddingDType } from '../models/upload.ts';
import { describeError } from '../quant/guard.ts';
import { CalibrationTextError, calibrationLines, MOSTLY_UNKNOWN, unknownShare } from '../quantize/calibration-text.ts';
import { fileDType, QuantizeRefusedError } from '../quantize/options.ts';
import { ACT_CALIBRATIONS, type ActCalibration } from '../quant/static-act.ts';
import type { Command } from './command.ts';
import { UsageError } from './command.ts';
import { formatBytes } from './info.ts';
import { parseArgs, type ModelCliIO } from './model-args.ts';
import { progressLine } from './progress.ts';

const USAGE = `usage: webq quantize <model> --dtype q8|q4|w8a8|w4a8|w8a8-static|mixed --out DIR
         [--method rtn|awq|gptq] [--group 32|64|128|channel] [--asymmetric|--symmetric]
         [--calib FILE | --calib-tokens N --calib-seed S] [--eval FILE] [--budget BITS]
         [--max-error E] [--report FILE] [--smooth ALPHA] [--act-calib minmax|percentile|kl]
         [--act-order] [--no-bias-correction] [--clip-search|--no-clip-search]
         [--embeddings int8|int4|f16|f32]

Quantizes every Linear weight of a checkpoint (a folder, folder URL or hub id) and writes
DIR/model.safetensors in webq's pre-quantized format, with config.json, generation_config.json
and the tokenizer and chat-template files. DIR appears only when complete.

  BERT                      query/key/value/output, intermediate/output, pooler, classifier
  Llama, Mistral, Qwen2/3   q/k/v/o, gate/up/down, and lm_head unless tied to the embeddings

dtypes: q8, q4 (weight-only), w8a8, w4a8 (int8 activations, a scale per token), w8a8-static (one
activation scale per Linear, fixed by calibration: --act-calib percentile (default), minmax or
kl, TensorRT's 2048-bin entropy method), mixed (4, 8 or 16 bits per layer by measured
sensitivity, within --budget average bits per weight, scales included; 4 to 16).

methods: rtn (round to nearest, default; needs no GPU; --clip-search chooses each 4-bit group's
range by a search for the least weighted weight error instead of min-max), gptq (second-order error
compensation from calibration, each Linear calibrated with the earlier ones quantized; q8, q4,
w8a8, w4a8, w8a8-static, mixed; --act-order), awq (activation-aware scales folded into the norm
or Linear before, plus a per-group search of scale and zero point by output error; q4, w4a8).

Calibration runs the float model on the GPU over --calib FILE (one sample per line). Without it a
decoder calibrates on text it writes itself: --calib-tokens tokens (default 4096) sampled at
temperature 1 with seed --calib-seed (default 0), from BOS and a few generic openings; an encoder
reads a built-in text. --smooth ALPHA (0..1; w8a8, w4a8, w8a8-static) migrates activation
outliers into the weights (SmoothQuant), folded into the preceding norm. Biases absorb the mean
output error on the calibration text (awq, mixed; not sequential gptq) unless --no-bias-correction.

Accuracy: with a calibrated method, --max-error or --report, the written model is loaded and
compared with the float model on --eval FILE (default: the calibration text): embedding cosine
for encoders (error = 1 - cosine), logit KL per token and top-1 agreement for decoders (error =
KL). Past --max-error E nothing is written, the exit code is 1, and the costliest layers are
named. --report FILE writes sizes, bits per weight, time and per-layer errors as JSON (a refused
run too, with "written": false and the error); a summary goes to stderr. Text the tokenizer
cannot read (mostly its unknown token) measures nothing: a warning, and --max-error is refused.

--embeddings says how the embedding table (a tied LM head too) is stored: int8 (BERT: one scale
per row; LLMs: groups of 32), int4, f16, or f32. Default int8, except an LLM table not tied to
the head: f16. Norms, biases and position tables are stored as f16.

Load the result like any model: webq embed DIR ..., webq generate DIR ..., BertModel.load(DIR),
LlmModel.load(DIR).`;

/** A number option, or a usage error naming it. */
function numberOpt(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`quantize: ${name} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

/** An integer option of at least `min`, or a usage error naming it. */
function intOpt(v: string | undefined, name: string, min: number): number | undefined {
  const n = numberOpt(v, name);
  if (n !== undefined && !(Number.isSafeInteger(n) && n >= min)) throw new UsageError(`quantize: ${name} must be an integer of at least ${min}, got ${JSON.stringify(v)}`);
  return n;
}

async function readLines(file: string | undefined, flag: string): Promise<string[] | undefined> {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = await (await loadFs(file)).readFile(file, 'utf8');
  } catch (e) {
    throw new UsageError(`quantize: ${flag} ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return calibrationLines(text, `${flag} ${file}`);
  } catch (e) {
    throw new UsageError(`quantize: ${(e as Error).message}`);
  }
}

/** The options as given, checked (every bad combination is a one-line error before any work). */
async function options(p: ReturnType<typeof parseArgs>): Promise<{ dtype: QuantizeDType; out: string; opts: QuantizeOptions; report?: string }> {
  const dtype = p.values.get('--dtype') as QuantizeDType | undefined;
  if (!dtype || !QUANTIZE_DTYPES.includes(dtype)) throw new UsageError(`quantize: --dtype must be q8, q4, w8a8 or w4a8 (or w8a8-static, mixed)${dtype ? `, got ${JSON.stringify(dtype)}` : ''}`);
  const out = p.values.get('--out');
  if (!out) throw new UsageError('quantize: --out DIR is required');
  const g = p.values.get('--group');
  const group = g === undefined ? undefined : g === 'channel' ? 'channel' : Number(g);
  if (group !== undefined && group !== 'channel' && ![32, 64, 128].includes(group)) throw new UsageError(`quantize: --group must be 32, 64, 128 or channel, got ${JSON.stringify(g)}`);
  if (p.flags.has('--asymmetric') && p.flags.has('--symmetric')) throw new UsageError('quantize: --asymmetric and --symmetric exclude each other');
  const symmetric = p.flags.has('--asymmetric') ? false : p.flags.has('--symmetric') ? true : undefined;
  const embeddings = p.values.get('--embeddings') as EmbeddingDType | undefined;
  if (embeddings !== undefined && !EMBEDDING_DTYPES.includes(embeddings)) throw new UsageError(`quantize: --embeddings must be ${EMBEDDING_DTYPES.join(', ')}, got ${JSON.stringify(embeddings)}`);
  const method = p.values.get('--method') as QuantMethod | undefined;
  if (method !== undefined && !QUANT_METHODS.includes(method)) throw new UsageError(`quantize: --method must be ${QUANT_METHODS.join(', ')}, got ${JSON.stringify(method)}`);
  const act = p.values.get('--act-calib') as ActCalibration | undefined;
  if (act !== undefined && !ACT_CALIBRATIONS.includes(act)) throw new UsageError(`quantize: --act-calib must be ${ACT_CALIBRATIONS.join(', ')}, got ${JSON.stringify(act)}`);
  const budget = numberOpt(p.values.get('--budget'), '--budget');
  if (budget !== undefined && !(budget >= 4 && budget <= 16)) throw new UsageError(`quantize: --budget must be 4 to 16 bits per weight, got ${budget}`);
  if (dtype === 'mixed' && budget === undefined) throw new UsageError('quantize: --dtype mixed needs --budget BITS (average bits per weight, 4 to 16)');
  if (budget !== undefined && dtype !== 'mixed') throw new UsageError(`quantize: --budget goes with --dtype mixed, not ${dtype}`);
  const maxError = numberOpt(p.values.get('--max-error'), '--max-error');
  if (maxError !== undefined && !(maxError >= 0)) throw new UsageError(`quantize: --max-error must be >= 0, got ${maxError}`);
  const smooth = numberOpt(p.values.get('--smooth'), '--smooth');
  const opts: QuantizeOptions = {
    group, symmetric, embeddings, method, budget, maxError, smooth, actCalibration: act,
    actOrder: p.flags.has('--act-order') || undefined,
    biasCorrection: p.flags.has('--no-bias-correction') ? false : undefined,
    calib: await readLines(p.values.get('--calib'), '--calib'),
    calibTokens: intOpt(p.values.get('--calib-tokens'), '--calib-tokens', 1),
    calibSeed: intOpt(p.values.get('--calib-seed'), '--calib-seed', 0),
    clipSearch: p.flags.has('--clip-search') ? true : p.flags.has('--no-clip-search') ? false : undefined,
    eval: await readLines(p.values.get('--eval'), '--eval'),
    measure: p.values.has('--report') || p.values.has('--eval') || undefined,
  };
  return { dtype, out, opts, report: p.values.get('--report') };
}

/** The human summary (stderr): sizes, time, whole-model error, the layers that lost most. */
export function summary(r: QuantizeReport): string {
  const lines = [
    `quantized ${r.architecture} as ${r.dtype} by ${r.method}: ${formatBytes(r.bytesIn)} -> ${formatBytes(r.bytesOut)} (${(r.bytesIn / r.bytesOut).toFixed(2)}x smaller), Linears ${r.bitsPerWeight.toFixed(2)} bits per weight, ${r.seconds.toFixed(1)} s`,
  ];
  if (r.calibration) {
    const c = r.calibration;
    const what = c.source === 'sampled' ? 'samples the model wrote itself' : c.source === 'built-in' ? 'lines of the built-in text' : 'texts of --calib';
    lines.push(`  calibration: ${c.texts} ${what}, ${c.tokens} tokens${c.sensitivityTokens !== undefined ? ` (mixed's per-layer measurements: the first ${c.sensitivityTokens})` : ''}`);
    if (c.unknownShare > MOSTLY_UNKNOWN) {
      lines.push(`  warning: ${(100 * c.unknownShare).toFixed(0)}% of the calibration tokens are the tokenizer's unknown token: the errors here measure little; give text in the model's language with --calib (and --eval)`);
    }
  }
  // The guard loads the written file as a default load does: say with which activations.
  const acts = /^w/.test(r.dtype) ? 'int8' : archFor(r.architecture)!.defaultActivations(fileDType(r.dtype));
  if (r.model) lines.push(`  whole model: ${describeError(r.model)} (${acts} activations, as a default load runs it)`);
  if (r.dtype === 'mixed') {
    for (const l of r.layers) lines.push(`  ${l.id.padEnd(16)} ${String(l.bits).padStart(2)} bits${l.group !== undefined ? ` group ${l.group}` : ''}, model error alone ${(l.candidates?.find((c) => c.bits === l.bits && c.group === l.group)?.error ?? 0).toExponential(2)}`);
  } else {
    const measured = r.layers.filter((l) => l.error !== undefined).sort((a, b) => b.error! - a.error!);
    if (measured.length) lines.push(`  largest layer errors (relative, on calibration inputs): ${measured.slice(0, 4).map((l) => `${l.id} ${l.error!.toExponential(2)}`).join(', ')}`);
  }
  return lines.join('\n') + '\n';
}

/** Writes the --report JSON; a failure is REPORT_WRITE, its message starting with `what`. */
async function writeReport(file: string, content: object, what: string): Promise<void> {
  try {
    await (await loadFs(file)).writeFile(file, JSON.stringify(content, null, 2) + '\n');
  } catch (e) {
    throw new WebqError('REPORT_WRITE', `${what} ${file} could not be written: ${(e as Error).message}`);
  }
}

export const quantizeCommand: Command = {
  summary: 'write a pre-quantized copy of a checkpoint (BERT or LLaMA-family)',
  usage: USAGE,
  async run(args, io) {
    const p = parseArgs('quantize', args, {
      flags: ['--asymmetric', '--symmetric', '--act-order', '--no-bias-correction', '--clip-search', '--no-clip-search'],
      values: ['--dtype', '--out', '--group', '--embeddings', '--revision', '--method', '--calib', '--calib-tokens', '--calib-seed', '--eval', '--budget', '--max-error', '--report', '--smooth', '--act-calib'],
    });
    const [model, ...rest] = p.positional;
    if (!model || rest.length) throw new UsageError('quantize: expected exactly one model (run "webq quantize --help")');
    const { dtype, out, opts, report } = await options(p);
    if (report !== undefined && (await (await loadFs(report)).stat(report).then((s) => s.isDirectory(), () => false))) throw new UsageError(`quantize: --report ${report} is a folder; give a file name`);
    const files = await openModelFiles(model, { revision: p.values.get('--revision') });
    const bar = progressLine(io);
    let r: QuantizeReport;
    try {
      // Tests run many commands on one device (ModelCliIO.gpuContext); a real run makes its own.
      r = await quantizeCheckpoint(files, out, dtype, { ...opts, onProgress: bar.update, context: (io as ModelCliIO).gpuContext });
    } catch (e) {
      // A refused run still writes its report: that is where one looks for why.
      if (report !== undefined && (e instanceof QuantizeRefusedError || e instanceof CalibrationTextError)) {
        const measured = e instanceof QuantizeRefusedError ? e.report : { evaluation: { tokens: e.coverage.tokens, unknownShare: unknownShare(e.coverage) } };
        await writeReport(report, { model, out, written: false, error: { code: e.code, message: e.message }, ...measured }, `${e.message}; the report`);
      }
      throw e;
    } finally {
      bar.clear();
    }
    if (report !== undefined) await writeReport(report, { model, out, ...r }, `${out} was written, but the report`);
    const how = `group ${r.spec.group}, ${r.spec.symmetric ? 'symmetric' : 'asymmetric'}${r.method !== 'rtn' ? `, ${r.method}` : ''}`;
    const ratio = `${((100 * r.bytesOut) / r.bytesIn).toFixed(1)}%`;
    io.stdout(`${out}: ${r.architecture}, ${r.quantized} linear weights as ${dtype} (${how}), embeddings ${r.embeddings}, ${r.tensors} tensors, ${formatBytes(r.bytesIn)} -> ${formatBytes(r.bytesOut)} (${ratio})\n`);
    // Plain round-to-nearest measures nothing: its summary is the line above (stdout stays data).
    if (r.calibration || r.model || io.stderrIsTTY) io.stderr(summary(r));
    return 0;
  },
};
