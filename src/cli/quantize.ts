/**
 * `webq quantize <model> --dtype q4 --out DIR`: writes a pre-quantized copy of a BERT checkpoint
 * (smaller download, no quantization at load) that `webq embed DIR` and BertModel.load read.
 */
import { openModelFiles } from '../io/hub.ts';
import { quantizeBertCheckpoint } from '../models/bert-quantize.ts';
import { LINEAR_DTYPES, type LinearDType } from '../ops/linear.ts';
import type { Command } from './command.ts';
import { UsageError } from './command.ts';
import { parseArgs } from './model-args.ts';

const USAGE = `usage: webq quantize <model> --dtype q8|q4|w8a8|w4a8 --out DIR [--group 32|64|128|channel] [--asymmetric|--symmetric]

Quantizes every Linear weight of a BERT checkpoint (a folder, folder URL or hub id) and writes
DIR/model.safetensors in webq's pre-quantized format, with config.json and the tokenizer files.
Load the result like any model: webq embed DIR ..., BertModel.load(DIR).`;

const fmtBytes = (n: number) => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`);

export const quantizeCommand: Command = {
  summary: 'write a pre-quantized copy of a BERT checkpoint',
  usage: USAGE,
  async run(args, io) {
    const p = parseArgs('quantize', args, { flags: ['--asymmetric', '--symmetric'], values: ['--dtype', '--out', '--group', '--revision'] });
    const [model, ...rest] = p.positional;
    if (!model || rest.length) throw new UsageError('quantize: expected exactly one model (run "webq quantize --help")');
    const dtype = p.values.get('--dtype') as LinearDType | undefined;
    if (!dtype || dtype === 'f32' || dtype === 'f16' || !LINEAR_DTYPES.includes(dtype)) throw new UsageError('quantize: --dtype must be q8, q4, w8a8 or w4a8');
    const out = p.values.get('--out');
    if (!out) throw new UsageError('quantize: --out DIR is required');
    const g = p.values.get('--group');
    const group = g === undefined ? undefined : g === 'channel' ? 'channel' : Number(g);
    if (group !== undefined && group !== 'channel' && ![32, 64, 128].includes(group)) throw new UsageError(`quantize: --group must be 32, 64, 128 or channel, got ${JSON.stringify(g)}`);
    if (p.flags.has('--asymmetric') && p.flags.has('--symmetric')) throw new UsageError('quantize: --asymmetric and --symmetric exclude each other');
    const symmetric = p.flags.has('--asymmetric') ? false : p.flags.has('--symmetric') ? true : undefined;
    const files = await openModelFiles(model, { revision: p.values.get('--revision') });
    const r = await quantizeBertCheckpoint(files, out, dtype, { group, symmetric });
    io.stdout(`${out}: ${r.quantized} linear weights as ${dtype}, ${r.tensors} tensors, ${fmtBytes(r.bytesIn)} -> ${fmtBytes(r.bytesOut)}\n`);
    return 0;
  },
};
