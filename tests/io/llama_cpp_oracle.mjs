// llama.cpp as the oracle of `hessgpt export --format gguf`: the prebuilt
// llama.cpp of the npm package node-llama-cpp (scripts/setup.sh installs it
// into .deps/llama) loads each exported file and must agree with HessGPT on
//   - the logits of every position (HessGPT's are soft-capped, a monotonic
//     map GGUF cannot express, so llama.cpp's are soft-capped here before the
//     comparison), for F32, F16, BF16 and Q8_0 weights, and with YaRN past
//     the original context;
//   - tokenization (the vocabulary, scores and token types in the metadata);
//   - the chat template (rendered by @huggingface/jinja, tokenized by
//     llama.cpp with special tokens, against `hessgpt tokenize --chat`).
// Refusals are checked too: Q8_0 of an FFN width that is not a multiple of 32.
//
// usage: node llama_cpp_oracle.mjs --hessgpt BIN --llama-dir DIR
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const modules = path.join(args['llama-dir'] ?? '', 'node_modules');
if (!args.hessgpt || !fs.existsSync(path.join(modules, 'node-llama-cpp'))) {
  console.error(`usage: --hessgpt BIN --llama-dir DIR (node-llama-cpp under DIR/node_modules: run scripts/setup.sh)`);
  process.exit(2);
}
const importModule = (name, file) => import(pathToFileURL(path.join(modules, name, file)).href);
const { getLlama } = await importModule('node-llama-cpp', 'dist/index.js');
const { Template } = await importModule('@huggingface/jinja', 'dist/index.js');

let failures = 0;
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
};
const hessgpt = (argv, input) => execFileSync(args.hessgpt, argv, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hessgpt-gguf-'));
const config = (extra) => ({
  vocab_size: 32008, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, head_dim: 16, intermediate_size: 192, rope_theta: 10000.0,
  rms_norm_eps: 1e-6, tie_word_embeddings: true, max_position_embeddings: 1024,
  rope_scaling: null, logit_softcap: 30.0, qk_norm: true, ...extra });
const makeModel = (name, cfg, seed) => {
  fs.writeFileSync(path.join(work, `${name}.json`), JSON.stringify(cfg));
  hessgpt(['init', '--model', path.join(work, `${name}.json`), '--seed', String(seed), '--out', path.join(work, name)]);
  return path.join(work, name);
};

// float32 [T, V] from `hessgpt score --dump-logits` (.npy version 1, little-endian).
const readNpy = (file) => {
  const bytes = fs.readFileSync(file);
  const headerLen = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + headerLen).toString('latin1');
  const shape = header.match(/'shape': \((\d+), (\d+)\)/).slice(1).map(Number);
  const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset + 10 + headerLen, bytes.byteOffset + bytes.length));
  return { shape, data };
};

let seed = 12345;
const random = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
const randomIds = (n) => [1, ...Array.from({ length: n - 1 }, () => 3 + Math.floor(random() * 31990))];

const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });

// Largest |ours - softcap(llama.cpp)| over the checked positions, relative to
// the spread (standard deviation) of our logits there.
async function compareLogits(ggufFile, checkpoint, ids, positions, label, tolerance) {
  const npy = path.join(work, 'logits.npy');
  hessgpt(['score', '--checkpoint', checkpoint, '--ids', ids.join(','), '--dump-logits', npy, '--json']);
  const ours = readNpy(npy);
  const model = await llama.loadModel({ modelPath: ggufFile });
  const context = await model.createContext({ contextSize: Math.max(256, ids.length + 8) });
  const wanted = new Set(positions);
  const input = ids.map((id, t) => (wanted.has(t) ? [id, { generateNext: { logits: true } }] : id));
  const outputs = await context.getSequence().controlledEvaluate(input);
  const vocab = ours.shape[1];
  let worst = 0, sumSq = 0, count = 0, argmaxAgree = 0;
  for (const t of positions) {
    const theirs = outputs[t].next.logits;
    let bestOurs = -Infinity, bestOursId = -1, bestTheirs = -Infinity, bestTheirsId = -1;
    for (let v = 0; v < vocab; v++) {
      const a = ours.data[t * vocab + v];
      const b = 30 * Math.tanh(theirs.get(v) / 30);
      worst = Math.max(worst, Math.abs(a - b));
      sumSq += a * a; count++;
      if (a > bestOurs) { bestOurs = a; bestOursId = v; }
      if (b > bestTheirs) { bestTheirs = b; bestTheirsId = v; }
    }
    if (bestOursId === bestTheirsId) argmaxAgree++;
  }
  await context.dispose();
  await model.dispose();
  const spread = Math.sqrt(sumSq / count);
  check(worst <= tolerance * spread,
        `${label}: logits at ${positions.length} positions, max |diff| ${worst.toExponential(2)} = ` +
        `${(worst / spread).toExponential(2)} of their spread (tolerance ${tolerance}); ` +
        `same argmax at ${argmaxAgree}/${positions.length}`);
  return { worst, spread, argmaxAgree };
}

// ---- logits, per weight type ------------------------------------------------
const plain = makeModel('plain', config({}), 7);
const ids = randomIds(48);
const everyPosition = ids.map((_, t) => t);
// Tolerances (relative to the logits' spread): llama.cpp keeps its KV cache in
// F16 (~5e-4 relative rounding of k and v), so even F32 weights differ at the
// 1e-3 level; F16/BF16 round every weight (2^-11 / 2^-8 relative), Q8_0 to
// 1/254 of each 32-block's largest value.
const tolerances = { f32: 0.01, f16: 0.02, bf16: 0.08, q8_0: 0.12 };
for (const [dtype, tolerance] of Object.entries(tolerances)) {
  const file = path.join(work, `plain-${dtype}.gguf`);
  hessgpt(['export', '--checkpoint', plain, '--format', 'gguf', '--dtype', dtype, '--out', file]);
  const r = await compareLogits(file, plain, ids, everyPosition, `gguf ${dtype}`, tolerance);
  if (dtype === 'f32') check(r.argmaxAgree === ids.length, 'gguf f32: greedy choice identical at every position');
}

// ---- YaRN past the original context -----------------------------------------
const yarn = makeModel('yarn', config({ max_position_embeddings: 512, rope_scaling: {
  rope_type: 'yarn', factor: 4.0, original_max_position_embeddings: 128, beta_fast: 32.0, beta_slow: 1.0 } }), 8);
const longIds = randomIds(400);
const yarnFile = path.join(work, 'yarn.gguf');
hessgpt(['export', '--checkpoint', yarn, '--format', 'gguf', '--dtype', 'f32', '--out', yarnFile]);
await compareLogits(yarnFile, yarn, longIds, [0, 50, 127, 128, 200, 300, 399], 'gguf f32, YaRN s=4 to position 399', tolerances.f32);

// ---- tokenizer and chat template ---------------------------------------------
{
  const model = await llama.loadModel({ modelPath: path.join(work, 'plain-f32.gguf') });
  const texts = ['Hello world, the quick brown fox.', '  two leading spaces and   runs', 'Ünïcödé café naïve',
    '数学はたのしい', 'emoji 🦙🚀 and \u{10FFFF}', 'def f(x):\treturn x**2  # tab', '3.14159 + 2 = 5.14159', ''];
  const ours = hessgpt(['tokenize'], texts.join('\n') + '\n').split('\n');
  let same = 0;
  texts.forEach((text, i) => {
    const theirs = Array.from(model.tokenize(text, false)).join(' ');
    if (theirs === ours[i].trim()) same++; else console.log(`  text ${JSON.stringify(text)}: ours [${ours[i]}] llama.cpp [${theirs}]`);
  });
  check(same === texts.length, `tokenization: ${same}/${texts.length} texts give the same ids`);

  const meta = model.fileInfo.metadata;
  const conversation = { messages: [
    { role: 'system', content: 'You are HessGPT.' },
    { role: 'user', content: 'What is 37*41?' },
    { role: 'assistant', content: 'It is 1517.', routes: [{ kind: 'math', request: 'Calculate 37*41', result: '1517' }] },
    { role: 'user', content: 'Thanks! And a haiku?' },
    { role: 'assistant', content: 'Autumn moonlight\na worm digs silently\ninto the chestnut.' } ] };
  const rendered = new Template(meta.tokenizer.chat_template).render({ ...conversation, bos_token: '<s>', add_generation_prompt: false });
  const theirs = Array.from(model.tokenize(rendered, true)).join(' ');
  const oursChat = hessgpt(['tokenize', '--chat'], JSON.stringify(conversation) + '\n').trim();
  check(theirs === oursChat, 'chat template: Jinja render + llama.cpp tokenization = hessgpt tokenize --chat');
  if (theirs !== oursChat) console.log(`  ours     ${oursChat}\n  llama.cpp ${theirs}`);
  check(String(meta.general.description).includes('soft-cap'), 'general.description carries the soft-cap note');
  check(meta.general.architecture === 'qwen3' && meta.tokenizer.ggml.eot_token_id === 32003,
        'metadata: qwen3 architecture, <|end|> as end of turn');
  await model.dispose();
}

// ---- refusals ----------------------------------------------------------------
{
  const odd = makeModel('odd', config({ intermediate_size: 176 }), 9);
  const r = spawnSync(args.hessgpt, ['export', '--checkpoint', odd, '--format', 'gguf', '--dtype', 'q8_0',
    '--out', path.join(work, 'odd.gguf')], { encoding: 'utf8' });
  check(r.status !== 0 && /multiple of 32/.test(r.stderr) && /down_proj/.test(r.stderr) && !fs.existsSync(path.join(work, 'odd.gguf')),
        `q8_0 of FFN width 176 refused: ${r.stderr.trim().split('\n').pop()}`);
}

fs.rmSync(work, { recursive: true, force: true });
console.log(failures ? `${failures} check(s) failed` : 'all checks passed');
process.exit(failures ? 1 : 0);
