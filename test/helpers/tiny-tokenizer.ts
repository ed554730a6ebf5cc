/**
 * tokenizer.json + tokenizer_config.json for an uncased WordPiece BERT tokenizer over the tiny
 * vocabulary, in the layout `tokenizers` (Rust) and transformers save, so the wrapper under test
 * sees what it would see for a real BERT model.
 */
import { SPECIAL_TOKENS, tinyVocab } from './tiny-bert-vocab.ts';

export interface TokenizerFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

export function tinyTokenizerFiles(maxLength: number, vocab: readonly string[] = tinyVocab()): TokenizerFiles {
  const ids = new Map(vocab.map((t, i) => [t, i]));
  const id = (t: string) => ids.get(t)!;
  const special = (t: string) => ({
    id: id(t),
    content: t,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const tok = (t: string, type_id: number) => ({ SpecialToken: { id: t, type_id } });
  const seq = (s: 'A' | 'B', type_id: number) => ({ Sequence: { id: s, type_id } });
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map(special),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [tok('[CLS]', 0), seq('A', 0), tok('[SEP]', 0)],
      pair: [tok('[CLS]', 0), seq('A', 0), tok('[SEP]', 0), seq('B', 1), tok('[SEP]', 1)],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [id('[CLS]')], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [id('[SEP]')], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocab.map((t, i) => [t, i])),
    },
  };
  const decoderEntries = SPECIAL_TOKENS.map((t) => {
    const { id: i, content, lstrip, normalized, rstrip, single_word, special: sp } = special(t);
    return [String(i), { content, lstrip, normalized, rstrip, single_word, special: sp }];
  });
  const tokenizerConfig = {
    added_tokens_decoder: Object.fromEntries(decoderEntries),
    clean_up_tokenization_spaces: true,
    cls_token: '[CLS]',
    do_basic_tokenize: true,
    do_lower_case: true,
    mask_token: '[MASK]',
    model_max_length: maxLength,
    never_split: null,
    pad_token: '[PAD]',
    sep_token: '[SEP]',
    strip_accents: null,
    tokenize_chinese_chars: true,
    tokenizer_class: 'BertTokenizer',
    unk_token: '[UNK]',
  };
  return { tokenizerJson, tokenizerConfig };
}
