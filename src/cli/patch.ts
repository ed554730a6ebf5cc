/**
 * `webq patch <webq-model> <delta> [--out DIR]`: applies a delta made by `webq diff`, in place
 * (atomically) or into a new folder (src/delta/patch-disk.ts).
 */
import { patchModelFolder } from '../delta/patch-disk.ts';
import { loadFs } from '../io/node-fs.ts';
import type { Command } from './command.ts';
import { UsageError } from './command.ts';
import { formatBytes } from './info.ts';
import { parseArgs } from './model-args.ts';

const USAGE = `usage: webq patch <webq-model> <delta> [--out DIR] [--public-key PUB]

Applies a delta made by \`webq diff\` to a quantized model folder. Everything is checked first: the
model's version must be the delta's base, and every hash of the model's and the delta's tensors
and files must match; otherwise nothing changes and the reason is printed. In place (no --out)
the files are replaced atomically: a crash at any point leaves the old model or the new one,
completed or discarded the next time the folder is opened. With --out DIR the patched model is
written to the new folder DIR and the model is left as it is.

The patched files are byte for byte what \`webq quantize\` makes of the new checkpoint.

--public-key PUB (a file holding an Ed25519 public key from \`webq keygen\`, or its base64 text)
refuses any delta not signed by that key (\`webq diff --sign\`). Without it, a delta is checked
for damage but not for who made it: apply unsigned deltas only from a source you trust.`;

/** --public-key: a file (SPKI PEM or base64) or the base64 text itself; undefined when not given. */
export async function readKeyArg(arg: string | undefined): Promise<string | undefined> {
  if (arg === undefined) return undefined;
  if (/^[A-Za-z0-9+/]{43}=$/.test(arg)) return arg;
  const fs = await loadFs(arg);
  return fs.readFile(arg, 'utf8').catch((e: Error) => {
    throw new UsageError(`cannot read the public key ${arg} (${e.message}); give a file from \`webq keygen\` or the key's base64 text`);
  });
}

export const patchCommand: Command = {
  summary: 'apply a delta package to a quantized model (atomically)',
  usage: USAGE,
  async run(args, io) {
    const p = parseArgs('patch', args, { flags: [], values: ['--out', '--public-key'] });
    if (p.positional.length !== 2) throw new UsageError('patch: expected <webq-model> <delta> (run "webq patch --help")');
    const [model, delta] = p.positional;
    const publicKey = await readKeyArg(p.values.get('--public-key'));
    const r = await patchModelFolder(model, delta, { out: p.values.get('--out'), publicKey });
    const what = `${r.changed.length} changed, ${r.added.length} added, ${r.removed.length} removed, ${r.renamed.length} renamed`;
    io.stdout(`${r.dir}: version ${r.from} -> ${r.to} (${what}; delta ${formatBytes(r.deltaBytes)}, model ${formatBytes(r.modelBytes)}${publicKey ? '; signature verified' : ''})\n`);
    return 0;
  },
};
