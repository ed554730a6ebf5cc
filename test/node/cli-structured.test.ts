// `webq generate --json-schema / --regex / --grammar` and `webq chat --json-schema`, in-process
// through main() on a tiny Llama with llama2's tokenizer; bad constraint files fail in one line
// before the model loads.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import Ajv2020 from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatIO } from '../../src/cli/chat.ts';
import { main } from '../../src/cli/main.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { CHATML } from '../helpers/llm-fixture.ts';
import { ARITH_GRAMMAR, parsesArith, SCHEMAS } from '../helpers/structured-cases.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-cli-structured-');
const Ajv = ((Ajv2020 as unknown as { default?: unknown }).default ?? Ajv2020) as typeof Ajv2020;
const F32 = ['--dtype', 'f32', '--kv', 'f32'];
let ctx: GpuContext;
let model: string;
let schemaFile: string;
let grammarFile: string;

beforeAll(async () => {
  ctx = await GpuContext.create();
  model = (await writeTinyLlama(join(tmp.dir, 'm'), { tokenizer: 'llama2', chatTemplate: CHATML, hidden: 64, layers: 2, seed: 5 })).dir;
  schemaFile = join(tmp.dir, 'person.json');
  await writeFile(schemaFile, JSON.stringify(SCHEMAS.nested));
  grammarFile = join(tmp.dir, 'arith.gbnf');
  await writeFile(grammarFile, ARITH_GRAMMAR);
}, 60_000);
afterAll(() => ctx?.dispose());

async function cli(argv: string[], extra: Partial<ChatIO> = {}) {
  const r = { code: 0, out: '', err: '' };
  r.code = await main(argv, { stdout: (t) => void (r.out += t), stderr: (t) => void (r.err += t), gpuContext: ctx, ...extra });
  return r;
}

describe('webq generate with a constraint', () => {
  it('--json-schema, --regex and --grammar outputs hold', async () => {
    const validate = new Ajv().compile(SCHEMAS.nested);
    const s = await cli(['generate', model, '--prompt', 'who?', '--json-schema', schemaFile, '--temperature', '1', '--seed', '3', '--max-tokens', '48', '--json', ...F32]);
    expect(s.code, s.err).toBe(0);
    expect(validate(JSON.parse(JSON.parse(s.out).text))).toBe(true);
    const r = await cli(['generate', model, '--prompt', 'code?', '--regex', '[0-9]{3}-[a-z]{2}', '--temperature', '1', '--seed', '4', ...F32]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^[0-9]{3}-[a-z]{2}\n$/);
    expect(r.err).toMatch(/finish stop/);
    const g = await cli(['generate', model, '--prompt', 'sum?', '--grammar', grammarFile, '--temperature', '1', '--seed', '5', '--max-tokens', '32', '--json', ...F32]);
    expect(g.code, g.err).toBe(0);
    expect(parsesArith(JSON.parse(g.out).text)).toBe(true);
  }, 120_000);

  it('bad constraints: one error line, before the model loads', async () => {
    const bad = join(tmp.dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ type: 'object', properties: { a: { type: 'integer', multipleOf: 5 } } }));
    const missing = join(tmp.dir, 'nope', 'model'); // never read: the checks come first
    for (const [args, fragment] of [
      [['--json-schema', bad], "'multipleOf' is not supported"],
      [['--json-schema', join(tmp.dir, 'absent.json')], 'cannot read it'],
      [['--regex', '(?!x)y'], 'lookahead'],
      [['--regex', 'a', '--grammar', grammarFile], 'give one of'],
    ] as const) {
      const r = await cli(['generate', missing, '--prompt', 'x', ...args]);
      expect(r.code).not.toBe(0);
      expect(r.out).toBe('');
      expect(r.err).toContain(fragment);
      expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    }
  });
});

describe('webq chat --json-schema', () => {
  it('every reply is JSON for the schema', async () => {
    const r = await cli(['chat', model, '--json-schema', schemaFile, '--temperature', '0.8', '--seed', '2', '--max-tokens', '48', ...F32], { input: Readable.from(['first\n', 'second\n']) });
    expect(r.code, r.err).toBe(0);
    const validate = new Ajv().compile(SCHEMAS.nested);
    const replies = r.out.trimEnd().split('\n');
    expect(replies).toHaveLength(2);
    for (const line of replies) expect(validate(JSON.parse(line)), line).toBe(true);
  }, 120_000);
});
