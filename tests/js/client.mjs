// The real @google/genai JavaScript SDK, driven over stdin/stdout: what a Node app pointed
// at a convostore proxy (or straight at the sandbox) sends and sees.
//
//   GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:8780 GEMINI_API_KEY=k node client.mjs conversation
//   GOOGLE_GEMINI_BASE_URL=... GEMINI_API_KEY=k node client.mjs commands   # one JSON command a line
//
// `conversation` runs a canned three-turn chat (the model from CONVOSTORE_MODEL, labels from
// CONVOSTORE_LABELS sent as x-convostore-labels) and prints one JSON line per turn.
// `commands` reads JSON lines {"op": "create"|"stream"|"get"|"delete"|"cancel", ...} and
// answers each with one JSON line ({"ok": ...} or {"error": ...}); `stream` first prints
// every event as its own line ({"event": ...}) the moment the SDK yields it, so a test can
// see events arrive one by one. Per call: "headers" (e.g. x-convostore-labels), "params"
// (the SDK's create/get params), "retries" (default 0: a 429 reaches the caller as is),
// "timeout" (ms). Errors carry status, message and the response headers.
import { createInterface } from 'node:readline';
import { GoogleGenAI } from '@google/genai';

const baseUrl = process.env.GOOGLE_GEMINI_BASE_URL;
const apiKey = process.env.GEMINI_API_KEY;
if (!baseUrl || !apiKey) {
  console.error('set GOOGLE_GEMINI_BASE_URL and GEMINI_API_KEY');
  process.exit(2);
}
const ai = new GoogleGenAI({ apiKey, httpOptions: { baseUrl } });

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function text(interaction) {
  const parts = [];
  for (const step of interaction.steps ?? []) {
    if (step.type !== 'model_output') continue; // a GET carries the turn's input steps too
    for (const block of step.content ?? []) {
      if (block.type === 'text') parts.push(block.text);
    }
  }
  return parts.join('');
}

function summary(interaction) {
  return { id: interaction.id, status: interaction.status, model: interaction.model, text: text(interaction),
           previous_interaction_id: interaction.previous_interaction_id ?? null };
}

function options(cmd) {
  const opts = { maxRetries: cmd.retries ?? 0 };
  if (cmd.headers) opts.headers = cmd.headers;
  if (cmd.timeout) opts.timeout = cmd.timeout;
  return opts;
}

function failure(err) {
  const headers = {};
  if (err?.headers && typeof err.headers.forEach === 'function') err.headers.forEach((v, k) => { headers[k] = v; });
  return { error: { name: err?.name ?? 'Error', status: err?.status ?? null, message: String(err?.message ?? err),
                    headers, cause: err?.cause ? String(err.cause?.message ?? err.cause) : null } };
}

async function run(cmd) {
  switch (cmd.op) {
    case 'create':
      return { ok: summary(await ai.interactions.create(cmd.params, options(cmd))) };
    case 'stream': {
      const events = await ai.interactions.create({ ...cmd.params, stream: true }, options(cmd));
      let last = null;
      let deltas = '';
      for await (const event of events) {
        say({ event });
        if (event.event_type === 'step.delta' && event.delta?.type === 'text') deltas += event.delta.text;
        if (event.event_type === 'interaction.completed') last = event.interaction;
      }
      return { ok: { id: last?.id ?? null, status: last?.status ?? null, text: deltas } };
    }
    case 'get':
      return { ok: summary(await ai.interactions.get(cmd.id, cmd.params ?? {}, options(cmd))) };
    case 'cancel':
      return { ok: summary(await ai.interactions.cancel(cmd.id, {}, options(cmd))) };
    case 'delete':
      await ai.interactions.delete(cmd.id, {}, options(cmd));
      return { ok: { id: cmd.id, deleted: true } };
    default:
      throw new Error(`unknown op ${JSON.stringify(cmd.op)}`);
  }
}

async function commands() {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    try {
      say(await run(JSON.parse(line)));
    } catch (err) {
      say(failure(err));
    }
  }
}

async function conversation() {
  const model = process.env.CONVOSTORE_MODEL ?? 'gemini-2.5-flash';
  const headers = process.env.CONVOSTORE_LABELS ? { 'x-convostore-labels': process.env.CONVOSTORE_LABELS } : undefined;
  let previous;
  for (const input of ['Hi, my name is Ada. I like chess.', 'What is my name?', 'And what do I like?']) {
    const params = { model, input, ...(previous ? { previous_interaction_id: previous } : {}) };
    const result = await run({ op: 'create', params, headers });
    say({ input, ...result.ok });
    previous = result.ok.id;
  }
}

const scenario = process.argv[2] ?? 'conversation';
if (scenario === 'commands') await commands();
else if (scenario === 'conversation') await conversation().catch((err) => { say(failure(err)); process.exitCode = 1; });
else {
  console.error(`unknown scenario ${scenario}: use conversation or commands`);
  process.exit(2);
}
