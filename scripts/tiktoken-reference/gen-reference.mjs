// Writes tiktoken's token ids for ChatStack's named cases and generated corpus, for both encodings:
//   node gen-reference.mjs <out.json> [corpusSize]
// Texts are stored as base64 UTF-16LE so lone surrogates survive JSON; tiktoken receives the same JS strings
// (its wasm-bindgen glue UTF-8-encodes them, turning lone surrogates into U+FFFD).
import { writeFileSync } from 'node:fs';
import { get_encoding } from 'tiktoken';
import { namedCases, generateCorpus, chunks, fuzzCases } from './corpus.mjs';

const [out = 'tiktoken-reference.json', sizeArg = '300000'] = process.argv.slice(2);
const corpus = generateCorpus(20251126, Number(sizeArg), { loneSurrogates: true });
const cases = [...namedCases.map(([n, t]) => [`case:${n}`, t]), ...chunks('corpus', corpus, 20000), ...fuzzCases(7, 10000)];

const utf16 = (s) => {
  const b = Buffer.alloc(s.length * 2);
  for (let k = 0; k < s.length; k++) b.writeUInt16LE(s.charCodeAt(k), k * 2);
  return b.toString('base64');
};

const result = { tiktoken: '1.0.22', encodings: {} };
for (const name of ['o200k_base', 'cl100k_base']) {
  const enc = get_encoding(name);
  // encode_ordinary: special-token text is ordinary text, as in ChatStack's counter.
  result.encodings[name] = cases.map(([caseName, text]) => ({ name: caseName, ids: Array.from(enc.encode_ordinary(text)) }));
  enc.free();
}
result.texts = Object.fromEntries(cases.map(([n, t]) => [n, utf16(t)]));
writeFileSync(out, JSON.stringify(result));
console.log(`wrote ${cases.length} cases (${corpus.length} generated code units) to ${out}`);
