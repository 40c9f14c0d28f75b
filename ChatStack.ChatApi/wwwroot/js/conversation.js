// The conversation view: one article per message, tool calls inline, text rendered safely as it streams.

import { el, renderMarkdown } from './render.js';

const messages = () => document.getElementById('messages');

export function clearConversation() {
  messages().replaceChildren();
}

export function addUserTurn(text) {
  const turn = article('user', 'You');
  const body = el('div', text);
  body.className = 'text plain';
  turn.append(body);
  messages().append(turn);
  turn.scrollIntoView({ block: 'nearest' });
}

/** An assistant answer being built from events (or from a stored session). */
export class AssistantTurn {
  #text = '';
  #tools = null;

  constructor() {
    this.node = article('assistant', 'Assistant');
    this.body = el('div');
    this.body.className = 'text';
    this.node.append(this.body);
    messages().append(this.node);
  }

  get text() { return this.#text; }

  set busy(value) { this.node.setAttribute('aria-busy', String(value)); }

  append(delta) {
    this.#text += delta;
    renderMarkdown(this.body, this.#text);
    this.node.scrollIntoView({ block: 'nearest' });
  }

  toolStarted({ name, arguments: args }) {
    const item = el('li');
    item.className = 'tool';
    item.dataset.status = 'running';
    item.dataset.name = name;
    item.dataset.key = name + JSON.stringify(args ?? {});
    item.append(el('span', `Tool ${name}(${describe(args)}) — running…`));
    this.#toolList().append(item);
  }

  toolEnded({ name, arguments: args, result_summary: result, duration_ms: durationMs, status }) {
    const key = name + JSON.stringify(args ?? {});
    let item = [...this.#toolList().children].find((li) => li.dataset.key === key && li.dataset.status === 'running');
    if (!item) {
      this.toolStarted({ name, arguments: args });
      item = this.#toolList().lastChild;
    }
    item.dataset.status = status;
    item.replaceChildren(
      el('span', `Tool ${name}(${describe(args)}) — ${status}, ${formatMs(durationMs)}`),
      Object.assign(el('span', result ?? ''), { className: 'result' }));
  }

  note(text, isError = false) {
    const p = el('p', text);
    p.className = isError ? 'note error' : 'note';
    this.node.append(p);
  }

  #toolList() {
    if (!this.#tools) {
      this.#tools = el('ul');
      this.#tools.className = 'tools';
      this.#tools.setAttribute('aria-label', 'Tool calls');
      this.body.before(this.#tools);
    }
    return this.#tools;
  }
}

/** A stored session's messages: user and assistant text, tool messages as finished tool calls. */
export function renderStoredMessages(records) {
  clearConversation();
  let turn = null;
  for (const message of records) {
    if (message.role === 'user') {
      addUserTurn(message.content);
      turn = null;
    } else if (message.role === 'tool') {
      turn ??= new AssistantTurn();
      turn.toolEnded({
        name: message.tool_name ?? 'tool',
        arguments: parseJson(message.tool_arguments),
        result_summary: message.content,
        duration_ms: message.duration_ms,
        status: message.tool_status ?? 'ok',
      });
    } else {
      turn ??= new AssistantTurn();
      turn.append(message.content);
      if (message.finish_reason && message.finish_reason !== 'stop') turn.note(`Finished: ${message.finish_reason}`);
      turn.busy = false;
      turn = null;
    }
  }
}

function article(role, label) {
  const node = el('article');
  node.className = 'turn';
  node.dataset.role = role;
  node.append(el('header', label));
  return node;
}

function describe(args) {
  if (!args || typeof args !== 'object') return '';
  return Object.entries(args).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join(', ');
}

function formatMs(ms) {
  if (typeof ms !== 'number') return 'no duration';
  return ms < 10 ? `${ms.toFixed(2)} ms` : `${Math.round(ms)} ms`;
}

function parseJson(text) {
  try { return text ? JSON.parse(text) : {}; } catch { return { arguments: text }; }
}
