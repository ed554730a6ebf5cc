// `webq generate --speculative lookup|self|draft=MODEL --draft-tokens K`, in-process through main() on a tiny Llama:
// the same text as plain greedy, the stats line's tokens per forward, and bad flags rejected before
// the model loads (a missing model folder would be the error otherwise).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/command.ts';
import { main } from '../../src/cli/main.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-cli-spec-');
let ctx: GpuContext;
let llama: string;
const PROMPT = 'the cat sat on the mat and the dog sat on the log, the cat sat on the';

beforeAll(async () => {
  ctx = await GpuContext.create();
  llama = (await writeTinyLlama(join(tmp.dir, 'llama'), { tokenizer: 'llama2', seed: 31 })).dir;
});
afterAll(() => ctx?.dispose());

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = { code: 0, out: '', err: '' };
  const io = { stdout: (t: string) => void (r.out += t), stderr: (t: string) => void (r.err += t), gpuContext: ctx } as CliIO;
  r.code = await main(argv, io);
  return r;
}

describe('webq generate --speculative', () => {
  it('prints the same text as plain greedy and reports tokens per forward', async () => {
    const base = ['generate', llama, '--prompt', PROMPT, '--dtype', 'f32', '--kv', 'f32', '--max-tokens', '24', '--temperature', '0'];
    const plain = await cli(base);
    const spec = await cli([...base, '--speculative', 'lookup', '--draft-tokens', '6']);
    expect(plain.code).toBe(0);
    expect(spec.code).toBe(0);
    expect(spec.out).toBe(plain.out);
    expect(spec.err).toMatch(/generated 24 tokens, .* tokens\/s, \d+\.\d\d tokens per forward \(drafts accepted \d+, rejected \d+\)/);
    expect(plain.err).not.toMatch(/per forward/);
    // self, draft=MODEL (the tiny model's folder again: another load, the same vocabulary), and sampling with a seed.
    for (const flags of [['--speculative', 'self'], ['--speculative', `draft=${llama}`, '--draft-tokens', '3']]) {
      const r = await cli([...base, ...flags]);
      expect(r.code, r.err).toBe(0);
      expect(r.out, flags.join(' ')).toBe(plain.out);
      expect(r.err).toMatch(/tokens per forward/);
    }
    const sampling = ['--temperature', '0.8', '--top-k', '20', '--seed', '5'];
    const sampled = await cli([...base, ...sampling]);
    const sampledSpec = await cli([...base, ...sampling, '--speculative', 'lookup']);
    expect(sampledSpec.code, sampledSpec.err).toBe(0);
    expect(sampledSpec.out).toBe(sampled.out);
  });

  it('rejects bad flags before loading the model', async () => {
    const missing = join(tmp.dir, 'no-such-model');
    const cases: [string[], string][] = [
      [['--speculative', 'lookup', '--draft-tokens', '0'], '--draft-tokens must be an integer from 1 to 16, got "0"'],
      [['--speculative', 'lookup', '--draft-tokens', '17'], '--draft-tokens must be an integer from 1 to 16, got "17"'],
      [['--speculative', 'tree'], '--speculative must be lookup, self or draft=MODEL, got "tree"'], [['--speculative', 'draft='], 'needs the draft model'], [['--speculative', 'self', '--draft-tokens', '17'], '--draft-tokens must be an integer from 1 to 16'],
      [['--draft-tokens', '4'], '--draft-tokens needs --speculative'],
      [['--speculative', 'lookup', '--regex', '[a-z]+'], '--speculative does not combine with a constraint'],
    ];
    for (const [flags, msg] of cases) {
      const r = await cli(['generate', missing, '--prompt', 'x', ...flags]);
      expect(r.code, flags.join(' ')).toBe(1);
      expect(r.err).toContain(msg);
      expect(r.err).not.toContain('no-such-model');
    }
  });
});
