/**
 * Command-line pieces shared by the commands that run a model (embed, classify): option parsing,
 * telling a model argument from a text, texts from stdin, and loading with download progress.
 */
import { BertModel, type BertLoadOptions } from '../api/bert.ts';
import { isHubId } from '../io/hub.ts';
import { loadFs } from '../io/node-fs.ts';
import { LINEAR_DTYPES, type LinearDType } from '../ops/linear.ts';
import { UsageError, type CliIO } from './command.ts';
import { DownloadBar } from './progress.ts';

export interface ParsedArgs {
  flags: Set<string>;
  values: Map<string, string>;
  positional: string[];
}

/**
 * `--flag`, `--opt value`, `--opt=value`; `--` ends the options (so a text may start with "-");
 * a lone `-` is positional (stdin). `aliases` maps short forms (`-m`) to long ones.
 */
export function parseArgs(
  command: string,
  args: readonly string[],
  spec: { flags: readonly string[]; values: readonly string[]; aliases?: Record<string, string> },
): ParsedArgs {
  const out: ParsedArgs = { flags: new Set(), values: new Map(), positional: [] };
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
      if (value === undefined || value === '') throw bad(`option ${name} needs a value`);
      out.values.set(name, value);
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

/** Loads the model with a download bar on stderr; the caller disposes it. */
export async function loadModel(location: string, io: CliIO, opts: Omit<BertLoadOptions, 'onProgress'>): Promise<BertModel> {
  const bar = new DownloadBar(io);
  try {
    const model = await BertModel.load(location, { ...opts, onProgress: bar.onProgress });
    bar.finish(true);
    return model;
  } catch (e) {
    bar.finish(false);
    throw e;
  }
}

/** The load options every model command shares: --dtype, --revision, --no-cache. */
export function loadOptions(command: string, parsed: ParsedArgs): Omit<BertLoadOptions, 'onProgress'> {
  const dtype = parseDtype(command, parsed.values.get('--dtype'));
  const revision = parsed.values.get('--revision');
  return {
    ...(dtype !== undefined && { dtype }),
    ...(revision !== undefined && { revision }),
    ...(parsed.flags.has('--no-cache') && { cache: false }),
  };
}

/** "hello world" -> a quoted one-line label at most `max` characters wide. */
export function shortText(text: string, max = 60): string {
  const q = JSON.stringify(text);
  return q.length <= max ? q : `${q.slice(0, max - 4)}..."`;
}
