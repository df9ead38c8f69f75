// Compares `hessgpt tokenize` with the independent JavaScript tokenizer of
// the npm package mistral-tokenizer-js, line by line, on the corpus in
// corpus/*.txt plus seeded random lines (all scripts, whitespace runs,
// control characters, invalid UTF-8). Every line must give identical ids
// (JS: encode(text, false) = no BOS, with the leading space that SentencePiece
// calls the dummy prefix), and `hessgpt tokenize --decode` must give the text
// back. Both sides see the same bytes; the JS side decodes them with
// TextDecoder, which repairs invalid UTF-8 as our tokenizer does.
//
// usage: node node_oracle.mjs --hessgpt BIN --tokenizer MODEL --mistral-js FILE
//                             --corpus DIR [--generated N] [--seed S] [--extra FILE]...
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const args = { generated: 5000, seed: 20240531, extra: [] };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, '').replace(/-/g, '_');
  const value = process.argv[i + 1];
  if (key === 'extra') args.extra.push(value); else args[key] = value;
}
for (const required of ['hessgpt', 'tokenizer', 'mistral_js', 'corpus']) {
  if (!args[required]) { console.error(`missing --${required.replace(/_/g, '-')}`); process.exit(2); }
}
if (!fs.existsSync(args.mistral_js)) {
  console.error(`${args.mistral_js} not found: run scripts/setup.sh (npm package mistral-tokenizer-js)`);
  process.exit(1);
}
const oracle = (await import(pathToFileURL(args.mistral_js).href)).default;

// ---- seeded generator -------------------------------------------------------
let state = Number(args.seed) >>> 0;
const rand = () => {  // mulberry32
  state = (state + 0x6D2B79F5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (arr) => arr[Math.floor(rand() * arr.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

const WORDS = ('the of and to in is that for it as was with be by on not he this are or his from at which ' +
  'but have an they you were her she there been one all we their has would when if so no what can out ' +
  'tokenizer model route sandbox python return def class import async await const let function ' +
  'café naïve über señor Straße Москва Ελλάδα 東京 你好 세계 こんにちは 🦙 🚀 👩‍💻 ' +
  '0 1 42 1517 3.14 -7 1e9 2024-05-31 0xFF').split(' ');
const PUNCT = '.,;:!?()[]{}<>"\'`~@#$%^&*-_=+/\\|'.split('');
const RANGES = [  // [lo, hi] code points, weighted by repetition
  [0x20, 0x7E], [0x20, 0x7E], [0x20, 0x7E], [0xA0, 0xFF], [0x100, 0x17F], [0x180, 0x24F],
  [0x300, 0x36F], [0x370, 0x3FF], [0x400, 0x4FF], [0x590, 0x5FF], [0x600, 0x6FF], [0x900, 0x97F],
  [0xE00, 0xE7F], [0x1100, 0x11FF], [0x2000, 0x206F], [0x2190, 0x21FF], [0x2200, 0x22FF],
  [0x2500, 0x257F], [0x2580, 0x259F], [0x3040, 0x30FF], [0x4E00, 0x9FFF], [0x4E00, 0x9FFF],
  [0xAC00, 0xD7A3], [0xE000, 0xF8FF], [0xFB00, 0xFB4F], [0xFE00, 0xFE0F], [0xFF00, 0xFFEF],
  [0xFFF0, 0xFFFD], [0x1F300, 0x1F5FF], [0x1F600, 0x1F64F], [0x1F900, 0x1F9FF], [0x1D400, 0x1D7FF],
  [0x20000, 0x2A6DF], [0xE0000, 0xE007F], [0xF0000, 0xF00FF], [0x0, 0x9], [0xB, 0x1F], [0x7F, 0x9F],
];
const INVALID = [  // byte sequences that are not UTF-8
  [0x80], [0xBF], [0xC0, 0xAF], [0xC1, 0xBF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],
  [0xF0, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80], [0xF5], [0xF8, 0x88, 0x80, 0x80, 0x80], [0xFE], [0xFF],
  [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0xC3], [0xE6, 0x97], [0xF0, 0x9F], [0xC3, 0x28], [0xE2, 0x28, 0xA1],
];
const whitespace = () => pick([' ', '  ', '   ', '    ', '\t', '\t\t', ' \t', '        ', ' '.repeat(int(1, 40)),
  '\t'.repeat(int(1, 6)), '\r', '\u00A0', '\u3000', '\v', '\f']);
const randomChar = () => { const [lo, hi] = pick(RANGES); return String.fromCodePoint(int(lo, hi)); };

function generateLine() {
  const parts = [];  // Buffers
  const kind = int(0, 9);
  const n = kind === 9 ? int(200, 2000) : int(1, 30);
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (kind === 0 || r < 0.35) parts.push(Buffer.from(pick(WORDS)));
    else if (r < 0.55) parts.push(Buffer.from(whitespace()));
    else if (r < 0.70) parts.push(Buffer.from(pick(PUNCT)));
    else if (r < 0.93) parts.push(Buffer.from(randomChar()));
    else if (kind >= 6) parts.push(Buffer.from(pick(INVALID)));
    else parts.push(Buffer.from(String(int(0, 1e6))));
    if (rand() < 0.4) parts.push(Buffer.from(' '));
  }
  return Buffer.concat(parts).filter((b) => b !== 0x0A);
}

// ---- corpus -------------------------------------------------------------------
const chunks = [];
const sources = [];  // [name, first line, line count]
let lineCount = 0;
const addText = (name, buf) => {
  if (buf.length === 0) return;
  if (buf[buf.length - 1] !== 0x0A) buf = Buffer.concat([buf, Buffer.from('\n')]);
  const lines = buf.filter((b) => b === 0x0A).length;
  sources.push([name, lineCount, lines]);
  lineCount += lines;
  chunks.push(buf);
};
for (const f of fs.readdirSync(args.corpus).filter((f) => f.endsWith('.txt')).sort()) {
  addText(f, fs.readFileSync(path.join(args.corpus, f)));
}
const generated = [];
for (let i = 0; i < Number(args.generated); i++) generated.push(generateLine(), Buffer.from('\n'));
addText('generated', Buffer.concat(generated));
for (const f of args.extra) addText(path.basename(f), fs.readFileSync(f));
const corpus = Buffer.concat(chunks);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hessgpt-oracle-'));
const corpusFile = path.join(tmp, 'corpus.txt');
fs.writeFileSync(corpusFile, corpus);
const run = (extra, input) => {
  const res = spawnSync(args.hessgpt, ['tokenize', '--tokenizer', args.tokenizer, ...extra],
                        { input, maxBuffer: 1 << 30 });
  if (res.status !== 0) {
    console.error(`hessgpt tokenize ${extra.join(' ')} failed (${res.status}): ${res.stderr}`);
    process.exit(1);
  }
  return res.stdout;
};
const ours = run([corpusFile]).toString('latin1').split('\n');
fs.rmSync(tmp, { recursive: true, force: true });
if (ours.length !== lineCount + 1 || ours[lineCount] !== '') {
  console.error(`hessgpt printed ${ours.length - 1} lines for ${lineCount} input lines`);
  process.exit(1);
}

// ---- compare ------------------------------------------------------------------
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
const texts = [];
let start = 0, identical = 0, roundTrip = 0;
const failures = [];
for (let i = 0; i < lineCount; i++) {
  const end = corpus.indexOf(0x0A, start);
  const text = decoder.decode(corpus.subarray(start, end));
  start = end + 1;
  texts.push(text);
  const expected = text.length === 0 ? [] : oracle.encode(text, false);
  const got = ours[i] === '' ? [] : ours[i].split(' ').map(Number);
  if (got.length === expected.length && got.every((v, k) => v === expected[k])) identical++;
  else failures.push({ line: i, text, expected, got });
}

// decode(encode(x)) == x, where x is the repaired text and "▁" reads back as a space.
const decoded = run(['--decode'], ours.slice(0, lineCount).join('\n') + '\n').toString('utf8').split('\n');
const decodeFailures = [];
for (let i = 0; i < lineCount; i++) {
  if (decoded[i] === texts[i].replaceAll('\u2581', ' ')) roundTrip++;
  else decodeFailures.push(i);
}

const where = (line) => { const s = sources.findLast(([, first]) => first <= line); return `${s[0]}:${line - s[1] + 1}`; };
for (const [name, first, n] of sources) {
  const bad = failures.filter((f) => f.line >= first && f.line < first + n).length;
  console.log(`${name.padEnd(28)} ${String(n).padStart(6)} lines  ${String(n - bad).padStart(6)} identical`);
}
const pct = (k) => (100 * k / lineCount).toFixed(2);
console.log(`ids:    ${identical}/${lineCount} lines identical to mistral-tokenizer-js (${pct(identical)} %)`);
console.log(`decode: ${roundTrip}/${lineCount} lines round-trip (${pct(roundTrip)} %)`);
for (const f of failures.slice(0, 10)) {
  console.log(`MISMATCH ${where(f.line)} ${JSON.stringify(f.text).slice(0, 200)}\n  js:      ${f.expected.join(' ')}\n  hessgpt: ${f.got.join(' ')}`);
}
for (const i of decodeFailures.slice(0, 10)) {
  console.log(`DECODE MISMATCH ${where(i)}\n  text:    ${JSON.stringify(texts[i]).slice(0, 200)}\n  decoded: ${JSON.stringify(decoded[i]).slice(0, 200)}`);
}
process.exit(failures.length === 0 && decodeFailures.length === 0 ? 0 : 1);
