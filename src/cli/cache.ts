/**
 * `webq cache list|rm`: what the download cache holds, and removing a model from it. The cache
 * folder is `${WEBQ_CACHE_DIR ?? ~/.cache/webq}` unless --cache-dir says otherwise.
 */
import { listCachedModels, removeCachedModel, type CachedModel } from '../io/hub/cached-models.ts';
import { UsageError, type CliIO, type Command } from './command.ts';
import { formatBytes } from './info.ts';

const USAGE = `usage: webq cache list [--json] [--cache-dir DIR]
       webq cache rm [--cache-dir DIR] [--hub-url URL] <org/name[@revision] | folder URL>...

list   one line per cached model (hub revision or folder URL): the hub it came
       from, its size, file count and when the server was last asked about it.
       Hub "?": cached by an older webq, which did not keep the hub; no load
       reads it any more (webq cache rm removes it)
rm     removes a model: org/name removes every revision, org/name@revision one,
       a folder URL that folder; a hub id goes from every hub it came from

options:
  --json           (list) print a JSON array instead of a table
  --cache-dir DIR  the cache folder (default $WEBQ_CACHE_DIR or ~/.cache/webq)
  --hub-url URL    (rm) remove hub ids from this hub only
  -h, --help`;

interface Args {
  action: 'list' | 'rm';
  json: boolean;
  cacheDir: string | undefined;
  hubUrl: string | undefined;
  models: string[];
}

/** A value option as "--name VALUE" or "--name=VALUE"; undefined when `a` is not that option. */
function valueOf(name: string, a: string, rest: string[], i: number): { value: string; next: number } | undefined {
  if (a.startsWith(`${name}=`)) return { value: a.slice(name.length + 1), next: i };
  if (a !== name) return undefined;
  const value = rest[i + 1];
  if (value === undefined) throw new UsageError(`cache: ${name} needs a value`);
  return { value, next: i + 1 };
}

function parseArgs(args: string[]): Args {
  const [action, ...rest] = args;
  if (action !== 'list' && action !== 'rm') {
    throw new UsageError(`cache: expected "list" or "rm", got ${action === undefined ? 'nothing' : JSON.stringify(action.slice(0, 100))} (run "webq cache --help")`);
  }
  const out: Args = { action, json: false, cacheDir: undefined, hubUrl: undefined, models: [] };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    const dir = valueOf('--cache-dir', a, rest, i);
    const hub = action === 'rm' ? valueOf('--hub-url', a, rest, i) : undefined;
    if (a === '--json' && action === 'list') out.json = true;
    else if (dir) [out.cacheDir, i] = [dir.value, dir.next];
    else if (hub) [out.hubUrl, i] = [hub.value, hub.next];
    else if (a.startsWith('-')) throw new UsageError(`cache ${action}: unknown option ${JSON.stringify(a.slice(0, 100))} (run "webq cache --help")`);
    else out.models.push(a);
  }
  if (action === 'list' && out.models.length) throw new UsageError(`cache list: takes no model, got ${JSON.stringify(out.models[0].slice(0, 100))}`);
  if (action === 'rm' && !out.models.length) throw new UsageError('cache rm: name the model to remove (org/name, org/name@revision or a folder URL)');
  return out;
}

function table(models: CachedModel[]): string {
  if (!models.length) return 'the cache is empty\n';
  const rows = models.map((m) => [
    m.location,
    m.kind === 'url' ? '-' : m.hub === null ? '?' : m.hub.replace(/^https:\/\//, ''),
    formatBytes(m.bytes),
    `${m.files.length} file${m.files.length === 1 ? '' : 's'}`,
    m.checkedAt ? m.checkedAt.toISOString().replace(/\.\d+Z$/, 'Z') : '-',
    m.commit?.slice(0, 10) ?? '-',
  ]);
  const head = ['MODEL', 'HUB', 'SIZE', 'FILES', 'CHECKED', 'COMMIT'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  const total = models.reduce((s, m) => s + m.bytes, 0);
  return `${[line(head), ...rows.map(line)].join('\n')}\ntotal: ${models.length} model${models.length === 1 ? '' : 's'}, ${formatBytes(total)}\n`;
}

/** " from huggingface.co" for a hub model, " (unknown hub)" for one cached before the hub was kept. */
function fromHub(m: CachedModel): string {
  if (m.kind === 'url') return '';
  return m.hub === null ? ' (unknown hub)' : ` from ${m.hub.replace(/^https:\/\//, '')}`;
}

export const cacheCommand: Command = {
  summary: 'list the models in the download cache, or remove one',
  usage: USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    const a = parseArgs(args);
    const opts = { ...(a.cacheDir !== undefined && { cacheDir: a.cacheDir }), ...(a.hubUrl !== undefined && { hubUrl: a.hubUrl }) };
    if (a.action === 'list') {
      const models = await listCachedModels(opts);
      io.stdout(a.json ? `${JSON.stringify(models, null, 2)}\n` : table(models));
      return 0;
    }
    let missing = 0;
    for (const model of a.models) {
      const removed = await removeCachedModel(model, opts);
      if (!removed.length) {
        io.stderr(`webq: ${model.slice(0, 200)} is not in the cache\n`);
        missing++;
      }
      for (const m of removed) io.stdout(`removed ${m.location}${fromHub(m)} (${formatBytes(m.bytes)})\n`);
    }
    return missing ? 1 : 0;
  },
};
