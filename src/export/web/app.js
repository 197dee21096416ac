// The browser chat page: loads the GGUF with wllama (llama.cpp in WebAssembly), renders each prompt with the
// training chat template through @huggingface/jinja (the library and template gemma-tune trains with), and decodes
// greedily. window.gemmaTune exposes { ready, ask(text), reset() } for scripted use (the test suite).
import { Wllama } from '/vendor/wllama/index.js';
import { Template } from '/vendor/jinja/index.js';

const $ = (id) => document.getElementById(id);
const status = (text, error = false) => { $('status').textContent = text; $('status').classList.toggle('error', error); };

function bubble(role, text) {
  const div = document.createElement('div');
  div.className = `msg ${role}`;
  div.textContent = text;
  $('log').append(div);
  div.scrollIntoView({ block: 'end' });
  return div;
}

const cfg = await (await fetch('/config.json')).json();
document.title = `${cfg.name} · gemma-tune chat`;
$('title').textContent = `${cfg.name} · gemma-tune chat`;
$('system').value = cfg.system ?? '';
if (cfg.system) $('system-box').open = true;

const template = new Template(cfg.chatTemplate);
const messages = [];
let busy = false;

/** Training prompt for the conversation + `user`; llama.cpp adds BOS itself (the GGUF says add_bos_token). */
function renderPrompt(user) {
  const system = $('system').value;
  const msgs = [...(system ? [{ role: 'system', content: system }] : []), ...messages, { role: 'user', content: user }];
  const text = template.render({ messages: msgs, bos_token: cfg.bosToken, eos_token: cfg.eosToken, add_generation_prompt: true });
  return text.startsWith(cfg.bosToken) ? text.slice(cfg.bosToken.length) : text;
}

const wllama = new Wllama({ default: '/vendor/wllama/wllama.wasm' }, { suppressNativeLog: true });

async function ask(user) {
  if (busy) throw new Error('busy');
  busy = true;
  setEnabled(false);
  bubble('user', user);
  const out = bubble('assistant', '');
  let text = '';
  let finish = null;
  try {
    await wllama.createCompletion({
      prompt: renderPrompt(user),
      max_tokens: cfg.maxNewTokens,
      temperature: 0,
      penalty_repeat: 1,
      stream: true,
      onData: (chunk) => {
        const c = chunk.choices?.[0];
        if (c?.text) { text += c.text; out.textContent = text; }
        if (c?.finish_reason) finish = c.finish_reason;
      },
    });
    messages.push({ role: 'user', content: user }, { role: 'assistant', content: text });
    if (finish === 'length') bubble('note', `(reply cut at ${cfg.maxNewTokens} tokens)`);
    return text;
  } finally {
    busy = false;
    setEnabled(true);
  }
}

function reset() {
  messages.length = 0;
  $('log').replaceChildren();
}

function setEnabled(on) {
  for (const id of ['input', 'send', 'reset']) $(id).disabled = !on;
  if (on) $('input').focus();
}

const ready = (async () => {
  const t0 = performance.now();
  await wllama.loadModelFromUrl(new URL('/model.gguf', location.href).href, {
    n_ctx: cfg.contextSize,
    flash_attn: false, // as node-llama-cpp (gemma-tune generate/chat) runs it, so both compute the same numbers
    ...(cfg.threads > 0 ? { n_threads: cfg.threads } : {}),
    useCache: false,
    progressCallback: ({ loaded, total }) => status(`loading model… ${total ? Math.round((100 * loaded) / total) : 0}%`),
  });
  status(`ready: ${cfg.name} on this device (llama.cpp/wasm, ${wllama.getNumThreads()} thread${wllama.getNumThreads() === 1 ? '' : 's'}, loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s), greedy`);
  setEnabled(true);
})();
ready.catch((e) => status(`could not load the model: ${e?.message ?? e}`, true));

$('form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('input').value;
  if (!text.trim() || busy) return;
  $('input').value = '';
  ask(text).catch((err) => status(`error: ${err?.message ?? err}`, true));
});
$('input').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); $('form').requestSubmit(); }
});
$('reset').addEventListener('click', reset);
$('system').addEventListener('change', reset);

window.gemmaTune = { ready, ask, reset, renderPrompt };
