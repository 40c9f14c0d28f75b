// The chat page: sign-in, sessions, and one streamed answer at a time.

import { ApiError, ChatApi } from './api.js';
import { AssistantTurn, addUserTurn, clearConversation, renderStoredMessages } from './conversation.js';
import { BudgetMeter } from './meter.js';
import { readEvents, sequenceOf } from './sse.js';
import { el } from './render.js';

const $ = (id) => document.getElementById(id);
const api = new ChatApi();
const meter = new BudgetMeter();
const MAX_RESUMES = 5;
// The answer streaming in this tab, kept across a reload: the API keeps a run whose reader left going for a few
// seconds, so a reloaded page picks it up instead of finding it cancelled.
const RUNNING_KEY = 'chatstack.running';

let sessionId = null;
let sessionTitle = '';
let running = null; // the AbortController of the answer streaming now
let runningStream = null; // its X-Stream-Id, once the answer has started
// False while the app loads after a sign-in: a message sent then would be wiped by the fresh chat that loading ends with.
let ready = false;
let nextCursor = null;
// Bumped whenever a user leaves: what a request made for them brings back later is dropped, not shown to the next.
let account = 0;

api.onUnauthorized = () => {
  running?.abort(); // no token left to cancel it on the server: the API ends a run without a reader after its grace
  forgetUser({ expired: true });
  showSignIn('Your sign-in has expired or was refused; sign in again.');
};
meter.onRetryAllowed = () => updateComposer();

// ---- sign-in

async function showSignIn(message = '') {
  $('app').hidden = true;
  $('whoami').hidden = true;
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = message;
  let development = false;
  try { development = await api.hasDevelopmentSignIn(); } catch { /* unreachable API: offer the token form */ }
  $('dev-sign-in').hidden = !development;
  $('token-sign-in').hidden = development;
  (development ? $('user-id') : $('bearer-token')).focus();
}

$('dev-sign-in').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    await api.signInDevelopment($('user-id').value.trim());
    await showApp();
  } catch (error) {
    $('sign-in-error').textContent = `Sign-in failed: ${error.message}`;
  }
});

$('token-sign-in').addEventListener('submit', async (e) => {
  e.preventDefault();
  api.useToken($('bearer-token').value.trim().replace(/^Bearer\s+/i, ''));
  $('bearer-token').value = ''; // a credential: not left in the page once used
  await showApp();
});

$('sign-out').addEventListener('click', () => {
  stopAnswer();
  api.signOut();
  forgetUser();
  showSignIn();
});

/**
 * Leaves nothing of the user who leaves on the page, as a fresh tab would be: their chat, sessions, meter (a 429
 * countdown too), name, draft, #session=… address and answer to resume after a reload. The next user's first
 * message starts a session of their own. An expired sign-in keeps the last four: mostly the same user signs in
 * again, and finds their chat and draft where they were (someone else cannot open that session).
 */
function forgetUser({ expired = false } = {}) {
  account++;
  running = null; // the answer's own ending finds it is not the running one any more and leaves the page alone
  runningStream = null;
  sessionId = null;
  nextCursor = null;
  clearConversation();
  showSessionInfo(null);
  $('session-list').replaceChildren();
  $('more-sessions').hidden = true;
  $('sessions-error').textContent = '';
  $('session-error').textContent = '';
  $('whoami-user').textContent = '';
  meter.clear(budget());
  if (!expired) {
    $('user-id').value = $('user-id').defaultValue;
    $('message').value = '';
    history.replaceState(null, '', location.pathname + location.search);
    sessionStorage.removeItem(RUNNING_KEY);
  }
  updateComposer();
}

async function showApp() {
  $('sign-in').hidden = true;
  $('app').hidden = false;
  $('whoami').hidden = false;
  $('whoami-user').textContent = `Signed in as ${api.user}`;
  meter.reset(budget());
  ready = false;
  updateComposer();
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('session');
  const user = account;
  try {
    await Promise.all([loadModels(), loadSessions()]);
    if (user !== account) return;
    if (fromHash) await openSession(fromHash);
    else newChat();
  } finally {
    ready = true;
    updateComposer();
  }
}

// ---- models

async function loadModels() {
  try {
    const list = await api.listModels();
    $('model').replaceChildren(...list.models.map((m) => {
      const option = el('option', `${m.name} (${m.context_window.toLocaleString()} tokens)`);
      option.value = m.name;
      return option;
    }));
    $('model').value = list.default_model;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    // Without the list the API's default model answers: an empty choice sends none.
    $('model').replaceChildren(el('option', 'default model'));
    $('model').firstChild.value = '';
  }
}

/** A session goes on with the model it was started with, when that is still offered. */
function selectModel(name) {
  if ([...$('model').options].some((o) => o.value === name)) $('model').value = name;
}

// ---- sessions

async function loadSessions(append = false) {
  const user = account;
  $('sessions-error').textContent = '';
  try {
    const page = await api.listSessions(append ? nextCursor : null);
    if (user !== account) return;
    if (!append) $('session-list').replaceChildren();
    for (const session of page.sessions) $('session-list').append(sessionItem(session));
    nextCursor = page.next_cursor;
    $('more-sessions').hidden = !nextCursor;
    markCurrentSession();
  } catch (error) {
    if (user !== account || (error instanceof ApiError && error.status === 401)) return;
    $('sessions-error').textContent = `Could not load sessions: ${error.message}`;
  }
}

function sessionItem(session) {
  const button = el('button');
  button.type = 'button';
  button.dataset.sessionId = session.id;
  button.append(el('span', session.title || '(untitled)'),
    el('small', `${new Date(session.updated_at).toLocaleString()} · ${session.total_tokens} tokens`));
  button.addEventListener('click', () => openSession(session.id));
  const item = el('li');
  item.append(button);
  return item;
}

function markCurrentSession() {
  for (const button of $('session-list').querySelectorAll('button')) {
    button.setAttribute('aria-current', String(button.dataset.sessionId === sessionId));
  }
}

async function openSession(id) {
  if (running) return;
  const user = account;
  try {
    const [session, records] = await Promise.all([api.getSession(id), api.getMessages(id)]);
    if (user !== account) return;
    $('session-error').textContent = '';
    sessionId = id;
    history.replaceState(null, '', `#session=${encodeURIComponent(id)}`);
    renderStoredMessages(records);
    showSessionInfo(session);
    selectModel(session.model);
    meter.reset(budget());
    markCurrentSession();
    $('message').focus();
    resumeAfterReload(id, records);
  } catch (error) {
    if (user !== account || (error instanceof ApiError && error.status === 401)) return;
    showSessionError(`Could not open the session: ${error.message}`);
  }
}

function showSessionInfo(session) {
  // The bar sits above the conversation and grows when a first answer ends: a reader scrolled down into the
  // conversation keeps their place (Chromium's scroll anchoring left the end of the answer below the window).
  const top = $('messages').getBoundingClientRect().top;
  $('session-info').textContent = session
    ? `${session.title} · ${session.message_count} messages · ${session.prompt_tokens} prompt + ${session.completion_tokens} completion = ${session.total_tokens} tokens`
    : '';
  sessionTitle = session?.title ?? '';
  $('rename-session').hidden = !session;
  $('delete-session').hidden = !session;
  const moved = $('messages').getBoundingClientRect().top - top;
  if (top < 0 && moved !== 0) scrollBy(0, moved);
}

/**
 * What went wrong with opening, renaming or deleting a chat, by the chat: the session list sits below the composer
 * on a narrow screen, where its own error line went unseen.
 */
function showSessionError(text) {
  $('session-error').textContent = text;
  $('session-error').scrollIntoView({ block: 'nearest' });
}

async function renameSession() {
  const id = sessionId;
  const title = id ? prompt('New name for this chat', sessionTitle) : null;
  if (title === null || title === sessionTitle) return;
  const user = account;
  $('session-error').textContent = '';
  try {
    const session = await api.renameSession(id, title);
    if (user !== account) return;
    showSessionInfo(session);
    await loadSessions();
  } catch (error) {
    if (user !== account || (error instanceof ApiError && error.status === 401)) return;
    showSessionError(`Could not rename the chat: ${error.message}`);
  }
}

async function deleteSession() {
  const id = sessionId;
  if (!id || running || !confirm('Delete this chat and its messages? This cannot be undone.')) return;
  const user = account;
  $('session-error').textContent = '';
  try {
    await api.deleteSession(id);
    if (user !== account) return;
    newChat();
    await loadSessions();
  } catch (error) {
    if (user !== account || (error instanceof ApiError && error.status === 401)) return;
    showSessionError(`Could not delete the chat: ${error.message}`);
  }
}

function newChat() {
  if (running) return;
  sessionId = null;
  history.replaceState(null, '', location.pathname + location.search);
  clearConversation();
  showSessionInfo(null);
  $('session-error').textContent = '';
  meter.reset(budget());
  markCurrentSession();
  $('message').focus();
}

$('new-chat').addEventListener('click', newChat);
$('rename-session').addEventListener('click', renameSession);
$('delete-session').addEventListener('click', deleteSession);
$('more-sessions').addEventListener('click', () => loadSessions(true));

// ---- composer

function budget() {
  const value = Number($('budget').value);
  return Number.isInteger(value) && value > 0 ? value : undefined;
}

function updateComposer() {
  $('send').disabled = !ready || running !== null || meter.limitedNow;
  $('delete-session').disabled = running !== null;
  $('stop').disabled = running === null;
}

$('message').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $('composer').requestSubmit();
  }
});

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('message').value;
  if (!text.trim() || !ready || running || meter.limitedNow) return;
  send(text);
});

$('stop').addEventListener('click', stopAnswer);

/**
 * Stops the answer now. Closing the connection alone would not: the API keeps a run whose reader left going for a
 * few seconds, so that a dropped connection can resume it.
 */
function stopAnswer() {
  if (!running) return;
  if (runningStream) api.cancelChat(runningStream).catch(() => {});
  running.abort();
}

// ---- one answer

async function send(text) {
  const controller = new AbortController();
  const user = account;
  running = controller;
  updateComposer();
  meter.reset(budget());
  let turn = null;
  try {
    const response = await api.postChat({ message: text, session_id: sessionId ?? undefined, model: $('model').value || undefined, budget_max: budget() }, controller.signal);
    $('message').value = '';
    const isNew = sessionId === null;
    sessionId = response.headers.get('X-Session-Id');
    runningStream = response.headers.get('X-Stream-Id');
    sessionStorage.setItem(RUNNING_KEY, JSON.stringify({ sessionId, streamId: runningStream }));
    if (isNew) {
      clearConversation();
      history.replaceState(null, '', `#session=${encodeURIComponent(sessionId)}`);
      loadSessions(); // the new session is stored already: list it while the answer streams
    }
    addUserTurn(text);
    turn = new AssistantTurn();
    turn.busy = true;
    await stream(response, runningStream, turn, controller.signal);
  } catch (error) {
    if (user !== account) {
      // Signed out meanwhile: nothing of this answer belongs on the page any more.
    } else if (controller.signal.aborted) {
      turn?.note('Stopped.');
    } else if (error instanceof ApiError && error.status === 429) {
      meter.limited(error);
    } else if (!(error instanceof ApiError && error.status === 401)) {
      (turn ?? new AssistantTurn()).note(`Could not send: ${error.message}`, true);
    }
  } finally {
    await endAnswer(turn, controller);
  }
}

/**
 * After a reload in the middle of an answer: the page shows what is saved (the message, maybe tool results), and
 * follows the run from its first event, which draws the answer again with the rest as it comes.
 */
async function resumeAfterReload(id, records) {
  const saved = JSON.parse(sessionStorage.getItem(RUNNING_KEY) ?? 'null');
  if (saved?.sessionId !== id || running) return;
  if (records.at(-1)?.role === 'assistant') {
    sessionStorage.removeItem(RUNNING_KEY); // it ended and was saved meanwhile: the stored answer is on screen
    return;
  }
  const controller = new AbortController();
  const user = account;
  running = controller;
  runningStream = saved.streamId;
  updateComposer();
  const last = document.getElementById('messages').lastElementChild;
  if (last?.dataset.role === 'assistant') last.remove(); // its saved tool calls come again with the events
  const turn = new AssistantTurn();
  turn.busy = true;
  try {
    await stream(null, saved.streamId, turn, controller.signal);
  } catch (error) {
    if (user !== account) { /* signed out meanwhile */ }
    else if (controller.signal.aborted) turn.note('Stopped.');
    else if (!(error instanceof ApiError && error.status === 401)) turn.note(`Could not resume: ${error.message}`, true);
  } finally {
    await endAnswer(turn, controller);
  }
}

/** The page after an answer: unless the user signed out meanwhile and someone else may be using the page. */
async function endAnswer(turn, controller) {
  if (turn) turn.busy = false;
  if (running !== controller) return;
  running = null;
  runningStream = null;
  sessionStorage.removeItem(RUNNING_KEY);
  updateComposer();
  const user = account;
  if (sessionId) {
    await loadSessions();
    if (user !== account) return;
    const id = sessionId;
    api.getSession(id).then((session) => { if (user === account && id === sessionId) showSessionInfo(session); }, () => {});
  }
  // Without scrolling to the composer: a reader who scrolled up to read stays there.
  $('message').focus({ preventScroll: true });
}

/**
 * Reads the stream to its done or error event. A connection that ends before that is resumed with
 * Last-Event-ID; events at or below the last sequence seen are skipped, so no text is shown twice. Without a
 * response (a reloaded page) it starts by resuming from the first event.
 */
async function stream(response, streamId, turn, signal) {
  let lastId = null;
  let lastSequence = 0;
  // Drops in a row, not in all: a connection that brought a new event worked, so a long answer on a flaky network
  // is not given up after MAX_RESUMES drops spread over it.
  let resumes = 0;
  let wait = 0; // before the next resume
  let dropped = false; // false only before a reloaded page's first connection, which waits for nothing
  for (;;) {
    if (response) {
      let finished = false;
      try {
        for await (const message of readEvents(response.body)) {
          const sequence = sequenceOf(message.id);
          if (sequence >= 0 && sequence <= lastSequence) continue;
          if (sequence >= 0) {
            lastSequence = sequence;
            lastId = message.id;
            resumes = 0;
          }
          finished = handle(message, turn) || finished;
        }
      } catch (error) {
        if (signal.aborted) throw error;
        // A dropped connection: fall through and resume.
      }
      if (finished) return;
      dropped = true;
      wait = 300 * 2 ** resumes;
    }
    if (dropped) {
      if (resumes >= MAX_RESUMES) {
        turn.note('The connection kept dropping; the answer so far is saved in the session.', true);
        return;
      }
      const later = wait >= 2000 ? ` in ${Math.ceil(wait / 1000)} s` : '';
      turn.note(`Connection lost; reconnecting (${resumes + 1}/${MAX_RESUMES})${later}…`);
      await sleep(wait, signal);
      resumes++;
    }
    dropped = true;
    try {
      response = await api.resumeChat(streamId, lastId, signal);
    } catch (error) {
      if (signal.aborted) throw error;
      if (error instanceof ApiError && error.status === 404) {
        turn.note('The stream is gone; reopen the session from the list to see the saved answer.', true);
        return;
      }
      if (error instanceof ApiError && !isTransient(error.status)) throw error;
      // Offline, or a proxy or the API busy for a moment while the run goes on: try again after the backoff, or
      // after the Retry-After the response asked for.
      response = null;
      wait = Math.max(300 * 2 ** resumes, (error.retryAfterSeconds ?? 0) * 1000);
    }
  }
}

/** Statuses that say "not now" rather than "never": a timeout, a rate limit, a server or a proxy in trouble. */
function isTransient(status) {
  return status === 408 || status === 429 || status >= 500;
}

/** Waits ms, or rejects as soon as signal aborts: Stop during a backoff stops at once. */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const abort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', abort);
      resolve();
    }, ms);
    signal.addEventListener('abort', abort, { once: true });
  });
}

/** Applies one event; true when it ends the stream. */
function handle(message, turn) {
  let envelope;
  try { envelope = JSON.parse(message.data); } catch { return false; }
  const data = envelope.data ?? {};
  switch (message.event) {
    case 'token_count': meter.update(data); return false;
    case 'message_delta': turn.append(data.text ?? ''); return false;
    case 'tool_start': turn.toolStarted(data); return false;
    case 'tool_end': turn.toolEnded(data); return false;
    case 'summarized':
      turn.note(`Earlier history was summarized: ${data.replaced_messages} messages, ${data.tokens_before} → ${data.tokens_after} tokens.`);
      return false;
    case 'done':
      meter.finish(data.usage, data.finish_reason);
      if (data.finish_reason !== 'stop') turn.note(`Finished: ${data.finish_reason.replace('_', ' ')}`);
      return true;
    case 'error':
      turn.note(`Error (${data.code}): ${data.message}`, true);
      return true;
    default: return false;
  }
}

// ---- start

if (api.signedIn) showApp(); else showSignIn();
