import { it } from 'vitest';
import { tinyTokenizerFiles } from '../../test/helpers/tiny-tokenizer.ts';
import { TextTokenizer } from '../../src/text/tokenizer.ts';
it('x', () => {
  const f = tinyTokenizerFiles(16);
  const t = TextTokenizer.fromJson(f.tokenizerJson, f.tokenizerConfig);
  console.log(t.vocabSize, t.inner.encode('Hello, world! The cats are playing today.', {return_token_type_ids: true}));
  console.log(t.encode('Hello, world! The cats are playing today.', {pair: 'what is the weather'}));
  console.log(t.encodeBatch(['the cat', 'Hello, world! The cats are playing today. this is long enough to be cut'], {maxLength: 12}));
  console.log(t.decode(t.encode('Hello, world! The cats are playing today.').ids, {skipSpecialTokens: true}));
});
