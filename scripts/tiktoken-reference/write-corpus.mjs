// Writes the generated benchmark corpus (valid UTF-8: no lone surrogates) shared by the .NET and npm benchmarks:
//   node write-corpus.mjs <out.txt> [sizeInCodeUnits] [segmentKind]   (kind: prose, code, cjk, emoji, whitespace, astral, mixed)
import { writeFileSync } from 'node:fs';
import { generateCorpus } from './corpus.mjs';

const [out = 'corpus.txt', sizeArg = '2000000', kind] = process.argv.slice(2);
const text = generateCorpus(42, Number(sizeArg), { kinds: kind ? [kind] : null });
writeFileSync(out, text, 'utf8');
console.log(`wrote ${text.length} UTF-16 code units, ${Buffer.byteLength(text, 'utf8')} UTF-8 bytes to ${out}`);
