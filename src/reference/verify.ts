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
