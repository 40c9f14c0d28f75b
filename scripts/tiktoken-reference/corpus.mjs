// Deterministic test and benchmark corpus for ChatStack's token counter: named edge cases plus a generated
// multilingual text (prose, code, CJK, emoji, whitespace runs, astral letters/digits, U+FEFF, lone surrogates).
// Only characters assigned since Unicode 13 or earlier are used, so the Unicode tables of Rust's regex crate
// (inside tiktoken) and of .NET agree on them.

const cp = (...points) => String.fromCodePoint(...points);
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, k) => cp(from + k));

export const namedCases = [
  ['empty', ''],
  ['astral-digits', 'a 𝟙𝟚𝟛'],
  ['astral-fraktur-contraction', "𝔘'll"],
  ['astral-fraktur-word', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝔱𝔢𝔵𝔱'],
  ['astral-bold', '𝐁𝐨𝐥𝐝 and 𝑖𝑡𝑎𝑙𝑖𝑐 𝟎𝟏𝟐𝟑𝟒𝟓'],
  ['astral-deseret-case', '𐐔𐐯𐑅𐐨𐑉𐐯𐐻 𐐢𐐯𐐻𐐲𐑉𐑆 𐐀𐐁𐐂𐐨𐐩'],
  ['astral-gothic', '𐌰𐌱𐌲 𐌳𐌴'],
  ['astral-adlam-digits', '𞥐𞥑𞥒𞥓𞥔 𞤀𞤢'],
  ['astral-cjk-ext-b', '𠀀𠀁𠀂 is rare'],
  ['emoji-zwj-family', 'family: 👩‍👩‍👧‍👦!'],
  ['emoji-skin-tone', 'ok 👍🏽👍🏿 done'],
  ['emoji-flags', '🇺🇸🇯🇵🇩🇪 flags'],
  ['emoji-keycap', '1️⃣ #️⃣ keycaps'],
  ['emoji-sequence', '😀😃😄😁😆😅🤣😂🙂🙃'],
  ['bom-leading', '\uFEFFhello world'],
  ['bom-inner', 'a\uFEFFb \uFEFF \uFEFF\uFEFF'],
  ['lone-high-surrogate', 'x\uD835 y'],
  ['lone-low-surrogate', 'x\uDC00y'],
  ['lone-surrogate-only', '\uD800'],
  ['reversed-surrogates', 'ab\uDC00\uD800cd'],
  ['high-at-end', 'tail \uD83D'],
  ['spaces-1000', ' '.repeat(1000)],
  ['spaces-then-word', ' '.repeat(257) + 'word'],
  ['newlines-100', '\n'.repeat(100)],
  ['mixed-whitespace', 'a \t \n  \n   b\r\n\r\n\t\tc    \n'],
  ['whitespace-unicode', 'a\u00A0b\u2003c\u3000d\u2028e\u0085f \u00A0 g'],
  ['indented-code', 'if (x) {\n        return y;\n    }\n\n\n    // done\n'],
  ['contractions', "I couldn't, we'll, they've, she's, I'm, you'd, we're, THEY'RE, It'S, x'ſ, 'll"],
  ['apostrophe-run', "'''' ' 'a 's"],
  ['cjk-chinese', '中文分词测试，这是一个句子。还有一个句子！'],
  ['cjk-japanese', '日本語のテキストです。カタカナとひらがな、漢字。'],
  ['cjk-korean', '한국어 텍스트입니다. 안녕하세요!'],
  ['cjk-upper-mix', '中ABCDEFGHIJKLMNOPQRSTUVWXYZabc 中ABC'],
  ['modifier-upper-run', 'ʰABCDEFGHIJKLMNOPQRSTUVWXYZ ʰABCdef'],
  ['combining-marks', 'A\u0300BCDEFGHIJKLMNOPQRSTUVWXYZ e\u0301te\u0301 \u0301\u0302x Z\u0335a\u0336l\u0337g\u0338o\u0339'],
  ['titlecase', 'ǅungla ǈudi ǋ Ǆ'],
  ['digits', '1 12 123 1234 12345678901 ١٢٣٤٥ ⅫⅩ ½¾ ²³'],
  ['slashes', 'a/b//c\n/\n//path/to/file.txt\r\n./\n'],
  ['punctuation-newlines', 'end.\n\nnext!\r\n?\n'],
  ['special-token-text', 'hi <|endoftext|> there <|im_start|>'],
  ['url-and-json', 'see https://example.com/a?b=c&d=e#f {"k": [1, 2.5, -3e10], "s": "v\\n"}'],
  ['rtl', 'مرحبا بالعالم שלום עולם'],
  ['indic', 'नमस्ते दुनिया क्षत्रिय'],
  ['thai', 'สวัสดีครับ ภาษาไทย'],
  ['greek-cyrillic', 'Ελληνικά ΚΕΦΑΛΑΙΑ Русский ТЕКСТ'],
  ['long-word', 'a'.repeat(300) + ' ' + 'ab'.repeat(200)],
  ['long-cjk-run', '漢字'.repeat(300)],
];

// mulberry32: small, deterministic, identical in every Node version.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const words = ('the of and to in is was that for on it with as by at from this be are have not but had his they ' +
  'you were her she there been one all we their can has more when will would which if about who could other ' +
  "some what out into them only than then its also new over time two may first after any these years such " +
  "streaming token budget model answer question context window request response latency cost couldn't we'll " +
  "I'm they've you'd it's don't WON'T Hello World ChatStack Aspire OpenAI JSON HTTP API configuration").split(' ');
const codeLines = [
  'public sealed class TokenBudget(int limit) : IDisposable',
  '{',
  '    private readonly Dictionary<string, int> _counts = new();',
  '    public int Remaining => limit - _counts.Values.Sum();',
  '    // TODO: handle the case where the stream ends early',
  '    if (delta.Length > 0 && !cancellationToken.IsCancellationRequested) { await writer.WriteAsync(delta); }',
  '}',
  '{"id": "chatcmpl-123", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}',
  'for (var i = 0; i < items.Count; i++) total += items[i].Tokens * 1.5e-3;',
  'const result = await fetch(`/api/chat?model=${model}&stream=true`, { method: "POST" });',
  'SELECT id, name FROM users WHERE created_at >= \'2024-01-01\' ORDER BY id DESC;',
  '\t\treturn x != null ? x.Value : default;',
];
const cjk = [...'的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家十用发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从知全与本已与电与话现与理体当因点',
  ...'あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんアイウエオカキクケコサシスセソタチツテト日本語漢字',
];
const cjkPunct = ['，', '。', '！', '？', '、', '「', '」', '：', '；'];
const emoji = ['😀', '🚀', '👍🏽', '👩‍💻', '👨‍👩‍👧', '🇫🇷', '❤️', '✨', '🎉', '🧪', '1️⃣', '🏳️‍🌈', '🤖'];
const astral = [
  ...range(0x1d400, 0x1d433), // mathematical bold letters
  ...range(0x1d504, 0x1d505), ...range(0x1d51e, 0x1d537), // fraktur
  ...range(0x1d7ce, 0x1d7ff), // mathematical digits
  ...range(0x10400, 0x1044f), // Deseret upper and lower case
  ...range(0x10330, 0x1034a), // Gothic (Lo and Nl)
  ...range(0x1e900, 0x1e943), ...range(0x1e950, 0x1e959), // Adlam letters and digits
  ...range(0x20000, 0x20020), // CJK extension B
  ...range(0x1f100, 0x1f10a), // digit commas (No)
];
const otherScripts = ['Привет мир', 'ΚΑΛΗΜΕΡΑ κόσμε', 'مرحبا', 'שלום', 'नमस्ते', 'สวัสดี', 'Ünïcödé façade naïve', 'e\u0301\u0302'];

function pick(r, list) {
  return list[Math.floor(r() * list.length)];
}

function segment(r, kind) {
  const out = [];
  const n = 5 + Math.floor(r() * 40);
  for (let k = 0; k < n; k++) {
    switch (kind) {
      case 'prose': {
        const w = pick(r, words);
        out.push(k === 0 ? w[0].toUpperCase() + w.slice(1) : w);
        out.push(r() < 0.1 ? pick(r, ['. ', ', ', '; ', '! ', '? ', '.\n']) : ' ');
        break;
      }
      case 'code':
        out.push(pick(r, codeLines), r() < 0.2 ? '\n\n' : '\n', ' '.repeat(4 * Math.floor(r() * 3)));
        break;
      case 'cjk':
        for (let m = 1 + Math.floor(r() * 12); m > 0; m--) out.push(pick(r, cjk));
        out.push(r() < 0.8 ? pick(r, cjkPunct) : r() < 0.5 ? '\n' : ' ');
        break;
      case 'emoji':
        out.push(pick(r, emoji), r() < 0.5 ? ' ' : '', r() < 0.3 ? pick(r, words) + ' ' : '');
        break;
      case 'whitespace':
        out.push(pick(r, [' ', '\t', '\n', '\r\n', '\u00A0', '\u3000']).repeat(1 + Math.floor(r() * 40)));
        out.push(r() < 0.5 ? pick(r, words) : pick(r, ['.', '{', '}', '//', '\n']));
        break;
      case 'astral':
        for (let m = 1 + Math.floor(r() * 8); m > 0; m--) out.push(pick(r, astral));
        out.push(pick(r, [' ', "'ll ", "'s ", '.', '\n', '', '1']));
        break;
      case 'mixed':
        out.push(pick(r, otherScripts), ' ');
        if (r() < 0.1) out.push('\uFEFF');
        if (r() < 0.1) out.push(pick(r, astral));
        break;
    }
  }
  return out.join('');
}

export const allWeights = [['prose', 35], ['code', 25], ['cjk', 20], ['emoji', 7], ['whitespace', 5], ['astral', 4], ['mixed', 4]];

/** Generated multilingual text of about `size` UTF-16 code units; `loneSurrogates` sprinkles some in; `kinds` keeps only those segment kinds. */
export function generateCorpus(seed, size, { loneSurrogates = false, kinds = null } = {}) {
  const r = rng(seed);
  const weights = kinds ? allWeights.filter(([k]) => kinds.includes(k)) : allWeights;
  const total = weights.reduce((s, [, w]) => s + w, 0);
  const parts = [];
  let length = 0;
  while (length < size) {
    let x = r() * total;
    let kind = weights[0][0];
    for (const [k, w] of weights) {
      if ((x -= w) < 0) { kind = k; break; }
    }
    let s = segment(r, kind);
    if (loneSurrogates && r() < 0.02) s += pick(r, ['\uD83D', '\uDE00', '\uDC00\uD800']);
    parts.push(s);
    length += s.length;
  }
  return parts.join('');
}

/** Splits a text into named chunks of at most `chunk` code units (cutting inside a surrogate pair on purpose). */
export function chunks(prefix, text, chunk) {
  const out = [];
  for (let k = 0; k * chunk < text.length; k++) out.push([`${prefix}-${k}`, text.slice(k * chunk, (k + 1) * chunk)]);
  return out;
}

// Characters from every class the split patterns distinguish, to fuzz their interactions: cased and uncased
// letters (BMP and astral, Lt, Lm, Lo), marks (Mn, Mc, Me), numbers (Nd, Nl, No, astral), apostrophes and the
// contraction letters (with U+017F, which folds to 's'), whitespace of each kind, '/', U+FEFF, emoji, lone surrogates.
const fuzzPool = [
  'a', 'b', 's', 't', 'd', 'm', 'l', 'r', 'e', 'v', 'A', 'S', 'L', 'E', 'D', "'", "'", "'", '\u017F', '\u2019',
  'ǅ', 'ʰ', 'ˆ', '中', 'ا', 'ー', '々', '\u0301', '\u0903', '\u20DD', '0', '7', '٣', 'Ⅻ', '½', '𝟙', '𐐀', '𐐨', '𝔘',
  ' ', ' ', ' ', '\t', '\n', '\n', '\r', '\u00A0', '\u3000', '\u2028', '\u0085', '\u000B', '/', '.', ',', '!', '-',
  '"', '(', '\uFEFF', '😀', '👍🏽', '\u200D', '\uD83D', '\uDC00', '<', '|', '_', '#', '$', '%', '€', '™',
];

/** `n` short random strings over fuzzPool, deterministic for a seed. */
export function fuzzCases(seed, n) {
  const r = rng(seed);
  const out = [];
  for (let k = 0; k < n; k++) {
    const len = Math.floor(r() * 40);
    let s = '';
    for (let m = 0; m < len; m++) s += pick(r, fuzzPool);
    out.push([`fuzz-${k}`, s]);
  }
  return out;
}
