/** CPU reference of shaders/verify.wgsl: per-row argmax (lowest index on ties) and the accepted count. */
export function verifyDraftsReference(logits: Float32Array, rows: number, vocab: number, draft: readonly number[]): { argmax: number[]; accepted: number } {
  const argmax: number[] = [];
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let i = 1; i < vocab; i++) if (logits[r * vocab + i] > logits[r * vocab + best]) best = i;
    argmax.push(best);
  }
  let accepted = 0;
  while (accepted < rows - 1 && draft[accepted] === argmax[accepted]) accepted++;
  return { argmax, accepted };
}

/**
 * CPU reference of sampled verification with a one-hot draft (src/ops/verify.ts): row r's token is
 * `sampleRow(r)` (the sampler's draw for token step + r); the accepted count is the longest prefix
 * of drafts equal to those draws, and the kept tokens are the accepted drafts then the draw after.
 */
export function verifySampledReference(rows: number, draft: readonly number[], sampleRow: (r: number) => number): { tokens: number[]; accepted: number; kept: number[] } {
  const tokens = Array.from({ length: rows }, (_, r) => sampleRow(r));
  let accepted = 0;
  while (accepted < rows - 1 && draft[accepted] === tokens[accepted]) accepted++;
  return { tokens, accepted, kept: [...draft.slice(0, accepted), tokens[accepted]] };
}

/**
 * The textbook rejection rule for one drafted position with a one-hot draft q = [x]: accept x with
 * probability min(1, p(x) / q(x)) = p(x) (uniform `u`); on rejection draw from normalize(max(0,
 * p - q)), p with x removed (uniform `v`). Tests compare the coupled draw above against it in
 * distribution. `p` is the target's distribution after temperature and the filters.
 */
export function rejectionStep(p: Float64Array, x: number, u: number, v: number): { accepted: boolean; token: number } {
  if (u < p[x]) return { accepted: true, token: x };
  let rest = 0;
  for (let i = 0; i < p.length; i++) if (i !== x) rest += p[i];
  let cum = 0, last = -1;
  for (let i = 0; i < p.length; i++) {
    if (i === x || p[i] <= 0) continue;
    last = i;
    cum += p[i];
    if (cum > v * rest) return { accepted: false, token: i };
  }
  return { accepted: false, token: last };
}
