/**
 * `webq keygen --out NAME`: an Ed25519 key pair for signed deltas (src/delta/sign.ts). NAME gets
 * the private key (PKCS#8 PEM, readable by its owner only), NAME.pub the public key (SPKI PEM);
 * the public key's base64 is printed too, for a page that passes it as a string.
 */
import { generateDeltaKeys } from '../delta/sign.ts';
import { WebqError } from '../errors.ts';
import { loadFs } from '../io/node-fs.ts';
import type { Command } from './command.ts';
import { UsageError } from './command.ts';
import { parseArgs } from './model-args.ts';

const USAGE = `usage: webq keygen --out NAME

Makes an Ed25519 key pair for signing deltas: NAME (the private key, PKCS#8 PEM, mode 600: keep
it secret) and NAME.pub (the public key, SPKI PEM). Sign with \`webq diff ... --sign NAME\`; apply
with \`webq patch ... --public-key NAME.pub\` (or the printed base64 text), and in code with
{ publicKey } on applyDelta, updateCachedModel and patchModelFolder. Neither file may exist.`;

export const keygenCommand: Command = {
  summary: 'make an Ed25519 key pair for signing deltas',
  usage: USAGE,
  async run(args, io) {
    const p = parseArgs('keygen', args, { flags: [], values: ['--out'] });
    const out = p.values.get('--out');
    if (!out || p.positional.length) throw new UsageError('keygen: expected --out NAME (run "webq keygen --help")');
    const fs = await loadFs(out);
    for (const f of [out, `${out}.pub`]) {
      if (await fs.stat(f).catch(() => null)) throw new WebqError('OUTPUT_EXISTS', `${f}: already exists; choose another --out (keys are never overwritten)`);
    }
    const k = await generateDeltaKeys();
    // Created with its mode (never readable by others, not even for a moment); 'wx': never over a file.
    await fs.writeFile(out, k.privateKey, { mode: 0o600, flag: 'wx' });
    await fs.writeFile(`${out}.pub`, k.publicKey, { flag: 'wx' });
    io.stdout(`${out}: private key (keep it secret)\n${out}.pub: public key ${k.publicKeyBase64}\n`);
    return 0;
  },
};
