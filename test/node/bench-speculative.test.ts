// `npm run bench -- speculative` at test size: the suite's run() in this process on the tiny shape
// and on the trained fixture; the rows' JSON and the identical-tokens check it makes.
import { describe, expect, it } from 'vitest';
import { run, type SpeculativeRow } from '../../bench/speculative.ts';

async function bench(args: string[]): Promise<{ code: number; rows: SpeculativeRow[]; stderr: string }> {
  let stdout = '', stderr = '';
  const code = await run(args, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) });
  return { code, rows: code === 0 ? JSON.parse(stdout) : [], stderr };
}

describe('bench speculative', () => {
  for (const model of ['tiny', 'trained']) {
    it(`${model}: plain, lookup, self and (trained) draft rows in one run, same tokens, counts that add up`, async () => {
      const r = await bench(['--model', model, '--dtype', 'f32', '--tokens', '16', '--k', '2,4', '--runs', '1', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const spec = ['lookup k=2', 'lookup k=4', 'self k=2', 'self k=4', ...(model === 'trained' ? ['draft k=2', 'draft k=4'] : [])];
      expect(r.rows.map((x) => x.mode)).toEqual(['plain', ...spec]);
      expect(r.rows[0].forwards).toBe(16);
      for (const x of r.rows) {
        expect(x.tokens).toBe(16);
        expect(x.tokensPerSecond).toBeGreaterThan(0);
        expect(x.forwards + x.accepted).toBe(x.tokens); // each token: a forward's own, or an accepted draft
      }
      expect(r.stderr).toMatch(/tokens\/forward/);
    });
  }

  it('rejects a bad --k and an unknown method', async () => {
    const r = await bench(['--k', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--k must be a comma-separated list of integers from 1 to 16');
    const m = await bench(['--methods', 'lookup,tree']);
    expect(m.code).toBe(2);
    expect(m.stderr).toContain('--methods must be a comma-separated list of lookup, self, draft, got lookup,tree');
  });
});
