// The conversation view: one article per message, tool calls inline, text rendered safely as it streams.

import { GrowingMarkdown, el } from './render.js';

const messages = () => document.getElementById('messages');
// How far below the window the end of an answer may be and still count as followed: about two lines.
const FOLLOW_SLACK_PX = 48;

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
  #drawn = 0; // how much of the text is on screen
  #frame = 0; // the animation frame that will draw the rest, while one is pending
  #markdown;
  #tools = null;

  constructor() {
    this.node = article('assistant', 'Assistant');
    this.body = el('div');
    this.body.className = 'text';
    this.node.append(this.body);
    this.#markdown = new GrowingMarkdown(this.body);
    messages().append(this.node);
    this.node.scrollIntoView({ block: 'nearest' });
  }

  get text() { return this.#text; }

  /** Ending the answer draws what is still waiting for a frame, so the final text is complete at once. */
  set busy(value) {
    if (!value) this.flush();
    this.node.setAttribute('aria-busy', String(value));
  }

  /**
   * Deltas are drawn once per animation frame, however many a frame brings: a resumed stream replays hundreds at
   * once, and drawing each froze the tab.
   */
  append(delta) {
    this.#text += delta;
    this.#frame ||= requestAnimationFrame(() => this.flush());
  }

  /** Draws the text now. */
  flush() {
    cancelAnimationFrame(this.#frame);
    this.#frame = 0;
    if (this.#drawn === this.#text.length) return;
    this.#drawn = this.#text.length;
    this.#change(() => this.#markdown.render(this.#text));
  }

  toolStarted({ name, arguments: args }) {
    const item = el('li');
    item.className = 'tool';
    item.dataset.status = 'running';
    item.dataset.name = name;
    item.dataset.key = name + JSON.stringify(args ?? {});
    item.append(el('span', `Tool ${name}(${describe(args)}) — running…`));
    this.#change(() => this.#toolList().append(item));
  }

  toolEnded({ name, arguments: args, result_summary: result, duration_ms: durationMs, status }) {
    const key = name + JSON.stringify(args ?? {});
    let item = [...this.#toolList().children].find((li) => li.dataset.key === key && li.dataset.status === 'running');
    if (!item) {
      this.toolStarted({ name, arguments: args });
      item = this.#toolList().lastChild;
    }
    item.dataset.status = status;
    this.#change(() => item.replaceChildren(
      el('span', `Tool ${name}(${describe(args)}) — ${status}, ${formatMs(durationMs)}`),
      Object.assign(el('span', result ?? ''), { className: 'result' })));
  }

  note(text, isError = false) {
    const p = el('p', text);
    p.className = isError ? 'note error' : 'note';
    this.#change(() => this.node.append(p));
  }

  /**
   * Makes a change that may lengthen the answer, and keeps its end in view if it was in view before: a reader
   * who scrolled up stays where they are.
   */
  #change(apply) {
    const following = this.node.getBoundingClientRect().bottom <= innerHeight + FOLLOW_SLACK_PX;
    apply();
    const below = this.node.getBoundingClientRect().bottom - innerHeight;
    if (following && below > 0) scrollBy(0, Math.ceil(below));
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
