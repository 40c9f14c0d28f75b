// Sweeps every scalar value of planes 0-3 and 14 (all assigned characters) through tiktoken, each in contexts
// that exercise the split patterns' classes: `${c}A${c}a${c}1${c} ${c}\n`. Writes, per block of 4096 code
// points, the token count and a checksum of the ids (h = h * 31 + id, mod 2^32):
//   node gen-unicode-sweep.mjs <out.json>
import { writeFileSync } from 'node:fs';
import { get_encoding } from 'tiktoken';

export const BLOCK = 0x1000;
export const PLANES = [0, 1, 2, 3, 14];

export function blockText(start) {
  const parts = [];
  for (let cp = start; cp < start + BLOCK; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const c = String.fromCodePoint(cp);
    parts.push(`${c}A${c}a${c}1${c} ${c}\n`);
  }
  return parts.join('');
}

const [out = 'unicode-sweep.json'] = process.argv.slice(2);
const result = { block: BLOCK, encodings: {} };
for (const name of ['o200k_base', 'cl100k_base']) {
  const enc = get_encoding(name);
  const blocks = [];
  for (const plane of PLANES) {
    for (let start = plane * 0x10000; start < (plane + 1) * 0x10000; start += BLOCK) {
      const ids = enc.encode_ordinary(blockText(start));
      let h = 0;
      for (const id of ids) h = (Math.imul(h, 31) + id) >>> 0;
      blocks.push({ start, count: ids.length, checksum: h });
    }
  }
  result.encodings[name] = blocks;
  enc.free();
}
writeFileSync(out, JSON.stringify(result));
console.log(`wrote ${PLANES.length * 16} blocks per encoding to ${out}`);
