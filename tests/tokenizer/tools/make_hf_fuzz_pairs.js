// Generates tests/tokenizer/hf_fuzz_pairs.json: random texts and random id sequences, tokenized and decoded by
// Hugging Face tokenizers (the official Rust library, npm package `tokenizers`@0.23.2) with the real Qwen2-VL
// tokenizer.json. Deterministic (seeded PRNG). Written for this repository; re-run with:
//   npm install tokenizers@0.23.2 && node make_hf_fuzz_pairs.js /path/to/tokenizer.json ../hf_fuzz_pairs.json
const fs = require('fs');
const { Tokenizer } = require('tokenizers');

let seed = 20261124;
function rand() { // mulberry32
  seed = (seed + 0x6D2B79F5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];

const specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|object_ref_start|>', '<|object_ref_end|>',
  '<|box_start|>', '<|box_end|>', '<|quad_start|>', '<|quad_end|>', '<|vision_start|>', '<|vision_end|>',
  '<|vision_pad|>', '<|image_pad|>', '<|video_pad|>'];
const pools = [
  // English words and punctuation
  ['the', 'The', 'hello', 'World', 'assistant', 'image', 'describe', 'HTTP', 'camelCase', 'snake_case', 'x', 'I'],
  ['.', ',', '!', '?', '...', '--', '-', '(', ')', '[', ']', '{', '}', '"', '`', '@', '#', '$', '%', '^', '&', '*', '_', '=', '+', '/', '\\', '|', '<', '>', ':', ';', '~'],
  // digits, other numbers (Nd, No, Nl)
  ['0', '7', '42', '2024', '3.14', '1,000', '٣', '५', '²', '½', 'Ⅻ', '①', '𝟘', '𐍈'],
  // whitespace of all kinds, CR/LF
  [' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', '\r', ' \n', '\n ', '\u000b', '\u000c', '\u0085', '\u00a0', '\u2009', '\u3000', '\u2028', '\u2029', '\u1680', '\u200b', '\ufeff'],
  // contractions, apostrophes
  ["'s", "'S", "'re", "'RE", "'Ve", "'ll", "'LL", "'d", "'D", "'m", "'t", "'T", "'x", "'", "’s", "'ſ"],
  // accents, combining marks (NFC composes e + U+0301), Hangul jamo (composes to syllables)
  ['é', 'e\u0301', 'a\u0308', '\u0301', 'ß', 'Ångström', 'naïve', 'Cửa Việt', '\u1100\u1161', 'ﬁ', 'Å', 'Ω', 'Ω'],
  // scripts
  ['Привет', 'Γειά', 'שלום', 'مرحبا', 'हिंदी', 'ภาษาไทย', 'ខ្មែរ', '中文', '漢字', 'ひらがな', 'カタカナ', '한국어', 'ქართული'],
  // emoji and symbols, outside the BMP included
  ['😀', '👍🏽', '👨‍👩‍👧', '❤️', '🇺🇸', '🦙', '™', '©', '€', '→', '∑', '🤖abc', 'a😀b'],
  // letters outside the BMP
  ['𝒜', '𝒷', '𝐀𝐁', '𠀀', '𠮷', '𐐷'],
  // control characters
  ['\u0000', '\u001b', '\u007f', '\u0008', '\u001c', '\u001f'],
  // added tokens, whole and broken
  specials,
  ['<|im_start', '<|', '|>', '<|im_start|', 'im_start|>', '<||>', '<|IM_START|>', '<<|im_end|>>', '<|im_end|><|im_end|>'],
];

function randomText() {
  const n = 1 + Math.floor(rand() * 24);
  let s = '';
  for (let i = 0; i < n; i++) s += pick(pick(pools));
  return s;
}

(async () => {
  const [tokenizerPath, outPath] = process.argv.slice(2);
  const tok = Tokenizer.fromFile(tokenizerPath);
  const encode = [];
  const seen = new Set();
  while (encode.length < 1500) {
    const text = randomText();
    if (seen.has(text)) continue;
    seen.add(text);
    const e = await tok.encode(text, null, { addSpecialTokens: false });
    encode.push({ text, ids: e.getIds() });
  }
  const decode = [];
  for (let k = 0; k < 400; k++) {
    const n = 1 + Math.floor(rand() * 16);
    const ids = [];
    for (let i = 0; i < n; i++) {
      const r = rand();
      // single bytes (ids 0..255 include the lone UTF-8 lead and continuation bytes), any token, or an added token
      ids.push(r < 0.4 ? Math.floor(rand() * 256) : r < 0.85 ? Math.floor(rand() * 151643) : 151643 + Math.floor(rand() * 14));
    }
    decode.push({ ids, decoded: await tok.decode(ids, false), decoded_skip_special: await tok.decode(ids, true) });
  }
  const lines = ['{', ' "generator": "tests/tokenizer/tools/make_hf_fuzz_pairs.js with HF tokenizers 0.23.2 (Rust, npm)",',
    ' "encode": ['];
  encode.forEach((c, i) => lines.push('  ' + JSON.stringify(c) + (i + 1 < encode.length ? ',' : '')));
  lines.push(' ],', ' "decode": [');
  decode.forEach((c, i) => lines.push('  ' + JSON.stringify(c) + (i + 1 < decode.length ? ',' : '')));
  lines.push(' ]', '}', '');
  fs.writeFileSync(outPath, lines.join('\n'));
  console.log(`wrote ${encode.length} encode and ${decode.length} decode cases to ${outPath}`);
})();
