/**
 * `webq diff <webq-model> <new-checkpoint> --out DELTA`: a delta package holding only what changed
 * (src/delta/diff.ts); `webq diff --merge D1 D2 ... --out D` folds consecutive deltas into one.
 */
import { diffModel, mergeDeltas, writeDeltaFile, type DeltaContents } from '../delta/diff.ts';
import { openDelta, type Delta } from '../delta/format.ts';
import { importPrivateKey, publicKeyOf } from '../delta/sign.ts';
import { loadFs } from '../io/node-fs.ts';
import { readKeyArg } from './patch.ts';
import { openModelFiles } from '../io/hub/hub.ts';
import type { Command } from './command.ts';
import { UsageError } from './command.ts';
import { formatBytes } from './info.ts';
import { parseArgs } from './model-args.ts';

const USAGE = `usage: webq diff <webq-model> <new-checkpoint> --out DELTA [--sign KEY]
       webq diff --merge DELTA1 DELTA2 ... --out DELTA [--sign KEY] [--public-key PUB]

Makes a delta package: the new checkpoint (a float one: folder, folder URL or hub id) quantized
with the options the model records, keeping only what changed. Units (weights) whose source is
unchanged are taken from the model; a weight moved to a new name is recorded as renamed; changed
and new ones are quantized into DELTA, one safetensors file with a manifest (base and new
versions, every hash, added / changed / removed / renamed). Side files (config, tokenizer) that
changed travel in it too. Apply it with \`webq patch\`, or model.applyDelta() on a loaded model.

--merge folds consecutive deltas (oldest first, each starting at the version the previous one
makes) into one from the first's base to the last's target.

Deltas need models quantized by round-to-nearest (q8, q4, w8a8, w4a8): calibrated methods depend
on the whole model, so re-quantize those in full. DELTA must not exist.

--sign KEY signs the delta with the Ed25519 private key in the file KEY (\`webq keygen\`), so that
a patch given the public key (--public-key) can tell it came from you. An unsigned delta proves
only that it arrived undamaged: apply one only when it comes from a source you trust. With
--merge, --public-key PUB refuses input deltas not signed by PUB.`;

function summary(d: DeltaContents, size: number): string {
  const m = d.manifest;
  const parts = [`${m.changed.length} changed`, `${m.added.length} added`, `${m.removed.length} removed`, `${m.renamed.length} renamed`];
  const files = Object.entries(m.files).filter(([, f]) => f === 'delta').map(([f]) => f);
  return `${m.base.version} -> ${m.target.version}: ${parts.join(', ')}${files.length ? `; files ${files.join(', ')}` : ''}; ${formatBytes(size)}`;
}

export const diffCommand: Command = {
  summary: 'make a delta package from a quantized model to a new checkpoint',
  usage: USAGE,
  async run(args, io) {
    const p = parseArgs('diff', args, { flags: ['--merge'], values: ['--out', '--revision', '--sign', '--public-key'] });
    const out = p.values.get('--out');
    if (!out) throw new UsageError('diff: --out DELTA is required');
    const keyFile = p.values.get('--sign');
    // The key is read first: a bad key fails before any work.
    const pem = keyFile === undefined ? undefined : await (await loadFs(keyFile)).readFile(keyFile, 'utf8').catch((e: Error) => {
      throw new UsageError(`diff: cannot read the private key ${keyFile} (${e.message})`);
    });
    const sign = pem === undefined ? undefined : { sign: await importPrivateKey(pem, keyFile), signer: await publicKeyOf(pem) };
    const publicKey = await readKeyArg(p.values.get('--public-key'));
    if (publicKey !== undefined && !p.flags.has('--merge')) throw new UsageError('diff: --public-key checks the input deltas of --merge');
    let d: DeltaContents;
    if (p.flags.has('--merge')) {
      if (p.positional.length < 2) throw new UsageError('diff --merge: give at least two deltas, oldest first');
      const deltas: Delta[] = [];
      try {
        for (const f of p.positional) deltas.push(await openDelta(f, undefined, { publicKey }));
        d = await mergeDeltas(deltas);
      } finally {
        for (const x of deltas) await x.close();
      }
    } else {
      if (p.positional.length !== 2) throw new UsageError('diff: expected <webq-model> <new-checkpoint> (run "webq diff --help")');
      const [model, next] = p.positional;
      d = await diffModel(await openModelFiles(model), await openModelFiles(next, { revision: p.values.get('--revision') }));
    }
    const size = await writeDeltaFile(out, d, sign);
    io.stdout(`${out}: ${summary(d, size)}${sign ? '; signed' : ''}\n`);
    return 0;
  },
};
