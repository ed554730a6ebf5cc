// `npm run bench -- batch` at test size: the suite's run() in this process on the tiny shape and on
// the trained fixture; the rows' JSON (it checks every batched row's tokens against the prompt alone).
import { describe, expect, it } from 'vitest';
import { run, type BatchRowResult } from '../../bench/batch.ts';

async function bench(args: string[]): Promise<{ code: number; rows: BatchRowResult[]; stderr: string }> {
  let stdout = '', stderr = '';
  const code = await run(args, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) });
  return { code, rows: code === 0 ? JSON.parse(stdout) : [], stderr };
}

describe('bench batch', () => {
  for (const model of ['tiny', 'trained']) {
    it(`${model}: one sequence, batches of 1, 2 and 4, and 4 concurrent calls against 4 in turn, each row's tokens as alone`, async () => {
      const r = await bench(['--model', model, '--dtype', 'q4', '--tokens', '8', '--runs', '1', '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.rows.map((x) => [x.mode, x.sequences, x.tokens])).toEqual([['one sequence (Decoder)', 1, 7], ['batch B=1', 1, 7], ['batch B=2', 2, 14], ['batch B=4', 4, 28], ['4 generate calls one after another', 4, 32], ['4 concurrent generate calls (concurrency 4)', 4, 32]]);
      for (const x of r.rows) expect(x.tokensPerSecond).toBeGreaterThan(0);
      expect(r.stderr).toMatch(/every row checked equal to its prompt alone/);
    });
  }

  it('rejects a bad --sizes', async () => {
    const r = await bench(['--sizes', '0,2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--sizes must be a comma-separated list of integers from 1 to 16');
  });
});
