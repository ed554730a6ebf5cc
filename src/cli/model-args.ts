/**
 * Command-line pieces shared by the commands that run a model (embed, classify, generate, logits,
 * chat): option parsing, telling a model argument from a text, texts from stdin, and loading with
 * download progress.
 */
import { BertModel, type BertLoadOptions } from '../api/bert.ts';
import { LlmModel, type GenerateOptions, type LlmLoadOptions } from '../api/llm.ts';
import type { GpuContext } from '../gpu/context.ts';
import { isHubId } from '../io/hub/hub.ts';
import { loadFs } from '../io/node-fs.ts';
import { KV_DTYPES, type KvDType } from '../ops/kv-cache.ts';
import { ACTIVATIONS, LINEAR_DTYPES, type Activations, type LinearDType } from '../ops/linear.ts';
import { UsageError, type CliIO } from './command.ts';
import { DownloadBar } from './progress.ts';

export interface ParsedArgs {
  flags: Set<string>;
  /** The last value of each option given. */
  values: Map<string, string>;
  /** Every value of each option, in order (for repeatable ones such as --stop). */
  lists: Map<string, string[]>;
  positional: string[];
}

/**
 * Options whose empty value means something: `--prompt ""` is an empty prompt (the model starts
 * from the tokenizer's BOS alone; one that adds none refuses it: EMPTY_PROMPT).
 */
const EMPTY_VALUE_OK = new Set(['--prompt']);

/**
 * `--flag`, `--opt value`, `--opt=value`; `--` ends the options (so a text may start with "-");
 * a lone `-` is positional (stdin). `aliases` maps short forms (`-m`) to long ones.
 */
export function parseArgs(
  command: string,
  args: readonly string[],
  spec: { flags: readonly string[]; values: readonly string[]; aliases?: Record<string, string> },
): ParsedArgs {
  const out: ParsedArgs = { flags: new Set(), values: new Map(), lists: new Map(), positional: [] };
  const bad = (msg: string) => new UsageError(`${command}: ${msg} (run "webq ${command} --help")`);
  for (let i = 0; i < args.length; i++) {
    const raw = args[i];
    if (raw === '--') {
      out.positional.push(...args.slice(i + 1));
      break;
    }
    if (!raw.startsWith('-') || raw === '-') {
      out.positional.push(raw);
      continue;
    }
    const eq = raw.startsWith('--') ? raw.indexOf('=') : -1;
    const name0 = eq < 0 ? raw : raw.slice(0, eq);
    const name = spec.aliases?.[name0] ?? name0;
    if (spec.flags.includes(name)) {
      if (eq >= 0) throw bad(`option ${name} takes no value`);
      out.flags.add(name);
    } else if (spec.values.includes(name)) {
      const value = eq >= 0 ? raw.slice(eq + 1) : args[++i];
      if (value === undefined || (value === '' && !EMPTY_VALUE_OK.has(name))) throw bad(`option ${name} needs a value`);
      out.values.set(name, value);
      out.lists.set(name, [...(out.lists.get(name) ?? []), value]);
    } else {
      throw bad(`unknown option ${JSON.stringify(raw)}; put "--" before texts that start with "-"`);
    }
  }
  return out;
}

export function parseDtype(command: string, value: string | undefined): LinearDType | undefined {
  if (value === undefined) return undefined;
  if (!(LINEAR_DTYPES as readonly string[]).includes(value)) {
    throw new UsageError(`${command}: --dtype ${JSON.stringify(value)}: expected one of ${LINEAR_DTYPES.join(', ')}`);
  }
  return value as LinearDType;
}

/** --activations float|int8 (what q8/q4 Linears do with their input; see LlmLoadOptions.activations). */
export function parseActivations(command: string, value: string | undefined): Activations | undefined {
  if (value === undefined) return undefined;
  if (!(ACTIVATIONS as readonly string[]).includes(value)) throw new UsageError(`${command}: --activations ${JSON.stringify(value)}: expected float (weight-only) or int8 (int8 activation blocks)`);
  return value as Activations;
}

/** Help for --activations, as every model command words it. */
export const ACTIVATIONS_HELP = `  --activations A         q8/q4 Linears: float (weight-only, the default) or int8 (activations
                          quantized per block of 32, dot4I8Packed kernels); w8a8/w4a8 are int8`;

async function isDirectory(path: string): Promise<boolean> {
  try {
    const fs = await loadFs(path);
    return (await fs.stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Whether a positional argument names a model rather than being a text: a URL (http, https,
 * file), a path starting with "/", "./" or "../" (so a mistyped folder is reported, not
 * embedded), an existing folder, or a hub id "org/name[@rev]".
 */
export async function looksLikeModel(arg: string): Promise<boolean> {
  if (/^(https?|file):/i.test(arg)) return true;
  if (/^(\/|\.\.?(\/|$))/.test(arg)) return true;
  return isHubId(arg) || (await isDirectory(arg));
}

/** Replaces a "-" among the texts by the lines of standard input (blank lines skipped). */
export async function expandStdin(command: string, texts: string[], io: CliIO): Promise<string[]> {
  const dash = texts.indexOf('-');
  if (dash < 0) return texts;
  if (texts.indexOf('-', dash + 1) >= 0) throw new UsageError(`${command}: "-" (read texts from stdin) may be given once`);
  if (!io.readStdin) throw new UsageError(`${command}: "-" reads texts from stdin, which is not available here`);
  const lines = (await io.readStdin()).split(/\r?\n/).filter((l) => l.trim() !== '');
  return [...texts.slice(0, dash), ...lines, ...texts.slice(dash + 1)];
}

/** One stderr line per text the model cut to fit, numbered as the output numbers texts ([1], [2], ...). */
export function warnTruncated(io: CliIO, truncated: readonly boolean[], maxLength: number): void {
  truncated.forEach((cut, i) => {
    if (cut) io.stderr(`webq: warning: text ${i + 1} was cut to the model's limit of ${maxLength} tokens (--no-truncate makes this an error)\n`);
  });
}

/** Runs a load with a download bar on stderr. */
async function withDownloadBar<T>(io: CliIO, load: (onProgress: DownloadBar['onProgress']) => Promise<T>): Promise<T> {
  const bar = new DownloadBar(io);
  try {
    const model = await load(bar.onProgress);
    bar.finish(true);
    return model;
  } catch (e) {
    bar.finish(false);
    throw e;
  }
}

/** Loads the model with a download bar on stderr; the caller disposes it. */
export function loadModel(location: string, io: CliIO, opts: Omit<BertLoadOptions, 'onProgress'>): Promise<BertModel> {
  return withDownloadBar(io, (onProgress) => BertModel.load(location, { ...opts, onProgress }));
}

/** Flags every model command takes (see CACHE_HELP). */
export const CACHE_FLAGS = ['--no-cache', '--offline', '--refresh'] as const;
export const CACHE_HELP = `  --no-cache              read remote files without the download cache
  --offline               never touch the network (also WEBQ_OFFLINE=1): cached files only
  --refresh               re-check a branch's files on the hub now (default: every 10 minutes)`;

/** The load options every model command shares: --dtype, --activations, --revision, --no-cache, --offline, --refresh. */
export function loadOptions(command: string, parsed: ParsedArgs): Omit<BertLoadOptions, 'onProgress'> {
  const dtype = parseDtype(command, parsed.values.get('--dtype'));
  const activations = parseActivations(command, parsed.values.get('--activations'));
  const revision = parsed.values.get('--revision');
  return {
    ...(dtype !== undefined && { dtype }),
    ...(activations !== undefined && { activations }),
    ...(revision !== undefined && { revision }),
    ...(parsed.flags.has('--no-cache') && { cache: false }),
    ...(parsed.flags.has('--offline') && { offline: true }),
    ...(parsed.flags.has('--refresh') && { refresh: true }),
  };
}

/** "hello world" -> a quoted one-line label at most `max` characters wide. */
export function shortText(text: string, max = 60): string {
  const q = JSON.stringify(text);
  return q.length <= max ? q : `${q.slice(0, max - 4)}..."`;
}

/** A CliIO that may carry a device to share (tests run many commands on one); a real run makes its own. */
export interface ModelCliIO extends CliIO {
  gpuContext?: GpuContext;
}

/** Parses a numeric option; undefined when absent, a usage error naming it when bad. */
export function numberOption(command: string, parsed: ParsedArgs, name: string, ok: (n: number) => boolean, want: string): number | undefined {
  const raw = parsed.values.get(name);
  if (raw === undefined) return undefined;
  // Number() alone takes "", " ", "0x10" and "Infinity": a command line means plain decimals.
  const n = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(raw) ? Number(raw) : NaN;
  if (!ok(n)) throw new UsageError(`${command}: ${name} must be ${want}, got ${JSON.stringify(raw)}`);
  return n;
}

/** The model argument of a command that takes exactly one. */
export function oneModel(command: string, parsed: ParsedArgs): string {
  const [model, ...rest] = parsed.positional;
  if (model === undefined) throw new UsageError(`${command}: expected a model (a folder, folder URL or hub id; run "webq ${command} --help")`);
  if (rest.length) throw new UsageError(`${command}: expected one model, got also ${rest.map((r) => JSON.stringify(r)).join(' ')} (quote a prompt with spaces)`);
  return model;
}

/** The --prompt text; "-" reads it from stdin, less one final newline (what `echo` adds). */
export async function readPrompt(command: string, parsed: ParsedArgs, io: CliIO): Promise<string> {
  const value = parsed.values.get('--prompt');
  if (value === undefined) throw new UsageError(`${command}: --prompt TEXT is required ("--prompt -" reads it from stdin)`);
  if (value !== '-') return value;
  if (!io.readStdin) throw new UsageError(`${command}: "--prompt -" reads the prompt from stdin, which is not available here`);
  return (await io.readStdin()).replace(/\r?\n$/, '');
}

/** Options of the commands that load an LLM. */
export const LLM_VALUES = ['--dtype', '--activations', '--kv', '--context', '--revision', '--file'] as const;
export const LLM_HELP = `  --dtype D               linear-layer weights: f32, f16, q8, q4, w8a8, w4a8 (default q4, or
                          the checkpoint's own when it is pre-quantized or a GGUF file)
  --file F                a GGUF file inside the model (a hub id, folder URL or folder), e.g.
                          model-Q4_K_M.gguf; a path or URL ending in .gguf names one itself
${ACTIVATIONS_HELP}
  --kv K                  KV cache: f16 (default where the device has it, else f32), f32, int8
  --context N             positions the KV cache holds (default: the model's, at most 4096)
  --revision R            hub branch, tag or commit (default main)
${CACHE_HELP}`;

export function llmLoadOptions(command: string, parsed: ParsedArgs): Omit<LlmLoadOptions, 'onProgress'> {
  const { dtype, activations, revision, cache, offline, refresh } = loadOptions(command, parsed);
  const kv = parsed.values.get('--kv');
  if (kv !== undefined && !(KV_DTYPES as readonly string[]).includes(kv)) throw new UsageError(`${command}: --kv ${JSON.stringify(kv)}: expected one of ${KV_DTYPES.join(', ')}`);
  const contextLength = numberOption(command, parsed, '--context', (n) => Number.isSafeInteger(n) && n >= 2, 'an integer of at least 2');
  const file = parsed.values.get('--file');
  return {
    ...(file !== undefined && { file }),
    ...(dtype !== undefined && { dtype }),
    ...(activations !== undefined && { activations }),
    ...(kv !== undefined && { kv: kv as KvDType }),
    ...(contextLength !== undefined && { contextLength }),
    ...(revision !== undefined && { revision }),
    ...(cache !== undefined && { cache }),
    ...(offline !== undefined && { offline }),
    ...(refresh !== undefined && { refresh }),
  };
}

/** Loads an LLM with a download bar on stderr, on the io's shared device if it has one; the caller disposes it. */
export function loadLlm(location: string, io: ModelCliIO, opts: Omit<LlmLoadOptions, 'onProgress'>): Promise<LlmModel> {
  return withDownloadBar(io, (onProgress) => LlmModel.load(location, { ...opts, onProgress, ...(io.gpuContext && { context: io.gpuContext }) }));
}

/** Sampling options; unset ones are left to the model (its generation_config.json, else greedy). */
export const SAMPLING_VALUES = ['--max-tokens', '--temperature', '--top-k', '--top-p', '--min-p', '--repetition-penalty', '--seed', '--stop'] as const;
export const SAMPLING_HELP = `  --max-tokens N          most new tokens (default: generation_config.json max_new_tokens, else 256)
  --top-k K               sample from the K likeliest tokens (0 = off)
  --top-p P               nucleus sampling: the likeliest tokens whose probabilities add up to P
  --min-p P               drop tokens less likely than P times the likeliest
  --repetition-penalty R  penalize tokens already seen by R, as transformers does (1 = off)
  --seed S                same seed, same tokens (default: random)
  --stop STR              end the text before STR (repeatable)`;

export type SamplingOptions = Pick<GenerateOptions, 'maxTokens' | 'temperature' | 'topK' | 'topP' | 'minP' | 'repetitionPenalty' | 'seed' | 'stop'>;

export function samplingOptions(command: string, parsed: ParsedArgs): SamplingOptions {
  const num = (name: string, ok: (n: number) => boolean, want: string) => numberOption(command, parsed, name, ok, want);
  const int = (n: number) => Number.isSafeInteger(n);
  const o: SamplingOptions = {
    maxTokens: num('--max-tokens', (n) => int(n) && n >= 1, 'a positive integer'),
    temperature: num('--temperature', (n) => n >= 0 && Number.isFinite(n), 'a number >= 0 (0 = greedy)'),
    topK: num('--top-k', (n) => int(n) && n >= 0, 'an integer >= 0 (0 = off)'),
    topP: num('--top-p', (n) => n > 0 && n <= 1, 'in (0, 1]'),
    minP: num('--min-p', (n) => n >= 0 && n < 1, 'in [0, 1)'),
    repetitionPenalty: num('--repetition-penalty', (n) => n > 0 && Number.isFinite(n), 'a number > 0 (1 = off)'),
    seed: num('--seed', (n) => int(n) && n >= 0 && n < 2 ** 32, 'an integer in [0, 2^32)'),
    stop: parsed.lists.get('--stop'),
  };
  for (const k of Object.keys(o) as (keyof SamplingOptions)[]) if (o[k] === undefined) delete o[k];
  return o;
}
