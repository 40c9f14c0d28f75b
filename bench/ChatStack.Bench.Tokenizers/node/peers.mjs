// Measures the npm tokenizers on a corpus file and prints one JSON array on stdout:
//   node peers.mjs <corpus.txt> [iterations] [onlyEncoding]
// Each library/encoding gets one warm-up pass (which fills gpt-tokenizer's piece cache, as ChatStack's is warm
// in BenchmarkDotNet), then the median of `iterations` timed passes over the whole corpus.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { get_encoding } from 'tiktoken';
import * as gptO200k from 'gpt-tokenizer/encoding/o200k_base';
import * as gptCl100k from 'gpt-tokenizer/encoding/cl100k_base';

const [corpusPath, iterArg = '5', only] = process.argv.slice(2);
const text = readFileSync(corpusPath, 'utf8');
const bytes = Buffer.byteLength(text, 'utf8');
const iterations = Number(iterArg);

function measure(library, encoding, count) {
  const tokens = count();
  const times = [];
  for (let k = 0; k < iterations; k++) {
    const t0 = performance.now();
    count();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)];
  return { library, encoding, tokens, medianMs: ms, mbPerSec: bytes / 1e6 / (ms / 1000) };
}

const results = [];
for (const [encoding, gpt] of [['o200k_base', gptO200k], ['cl100k_base', gptCl100k]].filter(([e]) => !only || e === only)) {
  results.push(measure('gpt-tokenizer 4.0.0', encoding, () => gpt.countTokens(text)));
  const enc = get_encoding(encoding);
  results.push(measure('tiktoken 1.0.22 (WASM)', encoding, () => enc.encode_ordinary(text).length));
  enc.free();
}
console.log(JSON.stringify({ bytes, results }));
