/**
 * `webq patch <webq-model> <delta> [--out DIR]`: applies a delta made by `webq diff`, in place
 * (atomically) or into a new folder (src/delta/patch-disk.ts).
 */
import { patchModelFolder } from '../delta/patch-disk.ts';
import type { Command } from './command.ts';
import { UsageError } from './command.ts';
import { formatBytes } from './info.ts';
import { parseArgs } from './model-args.ts';

const USAGE = `usage: webq patch <webq-model> <delta> [--out DIR]

Applies a delta made by \`webq diff\` to a quantized model folder. Everything is checked first: the
model's version must be the delta's base, and every hash of the model's and the delta's tensors
and files must match; otherwise nothing changes and the reason is printed. In place (no --out)
the files are replaced atomically: a crash at any point leaves the old model or the new one,
completed or discarded the next time the folder is opened. With --out DIR the patched model is
written to the new folder DIR and the model is left as it is.

The patched files are byte for byte what \`webq quantize\` makes of the new checkpoint.`;

export const patchCommand: Command = {
  summary: 'apply a delta package to a quantized model (atomically)',
  usage: USAGE,
  async run(args, io) {
    const p = parseArgs('patch', args, { flags: [], values: ['--out'] });
    if (p.positional.length !== 2) throw new UsageError('patch: expected <webq-model> <delta> (run "webq patch --help")');
    const [model, delta] = p.positional;
    const r = await patchModelFolder(model, delta, { out: p.values.get('--out') });
    const what = `${r.changed.length} changed, ${r.added.length} added, ${r.removed.length} removed, ${r.renamed.length} renamed`;
    io.stdout(`${r.dir}: version ${r.from} -> ${r.to} (${what}; delta ${formatBytes(r.deltaBytes)}, model ${formatBytes(r.modelBytes)})\n`);
    return 0;
  },
};
