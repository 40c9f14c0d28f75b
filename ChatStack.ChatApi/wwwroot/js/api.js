// The chat API as the page uses it: a bearer token, JSON in, problem details or SSE out.

const TOKEN_KEY = 'chatstack.token';

export class ApiError extends Error {
  constructor(status, problem, headers) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem ?? {};
    this.code = this.problem.code ?? `http-${status}`;
    this.headers = headers;
  }

  /** Seconds until a refused request may be retried: Retry-After, else RateLimit-Reset, else null. */
  get retryAfterSeconds() {
    for (const name of ['Retry-After', 'RateLimit-Reset']) {
      const value = this.headers?.get(name);
      if (value && /^\d+$/.test(value.trim())) return Number(value);
      const date = value ? Date.parse(value) : NaN;
      if (!Number.isNaN(date)) return Math.max(0, Math.ceil((date - Date.now()) / 1000));
    }
    return null;
  }
}

export async function toApiError(response) {
  let problem = null;
  try { problem = await response.json(); } catch { /* not JSON: the status says enough */ }
  return new ApiError(response.status, problem, response.headers);
}

/** The target of a Link header's rel="next", or null. */
function nextLink(header) {
  const match = header && /<([^>]*)>\s*;\s*rel="?next"?/.exec(header);
  return match ? match[1] : null;
}

export class ChatApi {
  #token = null;
  onUnauthorized = () => {};

  constructor() {
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) {
      const { token, user, expires } = JSON.parse(saved);
      if (!expires || expires > Date.now()) this.#setToken(token, user, expires);
    }
  }

  get signedIn() { return this.#token !== null; }
  user = null;

  /** Whether this API offers the development sign-in: its OpenAPI document lists the endpoint only in Development. */
  async hasDevelopmentSignIn() {
    const response = await fetch('openapi/v1.json');
    return response.ok && '/api/dev/token' in ((await response.json()).paths ?? {});
  }

  async signInDevelopment(userId) {
    const response = await fetch('api/dev/token', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user_id: userId }),
    });
    if (!response.ok) throw await toApiError(response);
    const { access_token: token, expires_in: expiresIn } = await response.json();
    this.#setToken(token, userId, Date.now() + expiresIn * 1000);
  }

  useToken(token) {
    const claims = decodeClaims(token);
    this.#setToken(token, claims?.sub ?? 'token user', claims?.exp ? claims.exp * 1000 : null);
  }

  signOut() {
    this.#token = null;
    this.user = null;
    sessionStorage.removeItem(TOKEN_KEY);
  }

  #setToken(token, user, expires) {
    this.#token = token;
    this.user = user;
    sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ token, user, expires }));
  }

  async #fetch(path, init = {}) {
    const token = this.#token;
    const headers = new Headers(init.headers);
    headers.set('Authorization', `Bearer ${token}`);
    const response = await fetch(path, { ...init, headers });
    // Only the token in use now can expire: a late answer to a request of a user who signed out since (or to one
    // sent without a token) must not sign out whoever uses the page now.
    if (response.status === 401 && token !== null && token === this.#token) {
      this.signOut();
      this.onUnauthorized();
    }
    return response;
  }

  async #json(path) {
    const response = await this.#fetch(path);
    if (!response.ok) throw await toApiError(response);
    return response.json();
  }

  listSessions(cursor, limit = 20) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor) query.set('cursor', cursor);
    return this.#json(`api/sessions?${query}`);
  }

  listModels() { return this.#json('api/models'); }

  getSession(id) { return this.#json(`api/sessions/${encodeURIComponent(id)}`); }

  async deleteSession(id) {
    const response = await this.#fetch(`api/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' });
    if (!response.ok) throw await toApiError(response);
  }

  async renameSession(id, title) {
    const response = await this.#fetch(`api/sessions/${encodeURIComponent(id)}`, {
      method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ title }),
    });
    if (!response.ok) throw await toApiError(response);
    return response.json();
  }

  /** The whole history: the API answers a page at a time and links the next one while more follow. */
  async getMessages(id) {
    const messages = [];
    let path = `api/sessions/${encodeURIComponent(id)}/messages`;
    while (path) {
      const response = await this.#fetch(path);
      if (!response.ok) throw await toApiError(response);
      messages.push(...await response.json());
      path = nextLink(response.headers.get('Link'));
    }
    return messages;
  }

  /** Starts a chat; resolves with the response once its headers arrive (the body is the event stream). */
  async postChat(body, signal) {
    const response = await this.#fetch('api/chat', {
      method: 'POST', signal,
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw await toApiError(response);
    return response;
  }

  /** Stops an answer now; what was said so far is saved. A stream that has ended already is fine too. */
  async cancelChat(streamId) {
    const response = await this.#fetch(`api/chat/streams/${encodeURIComponent(streamId)}/cancel`, { method: 'POST', keepalive: true });
    if (!response.ok && response.status !== 404) throw await toApiError(response);
  }

  /** Picks a stream up again after lastEventId. */
  async resumeChat(streamId, lastEventId, signal) {
    const headers = { Accept: 'text/event-stream' };
    if (lastEventId) headers['Last-Event-ID'] = lastEventId;
    const response = await this.#fetch(`api/chat/streams/${encodeURIComponent(streamId)}`, { headers, signal });
    if (!response.ok) throw await toApiError(response);
    return response;
  }
}

/** The claims of a JWT, read only to show who is signed in (the API validates it). */
function decodeClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}
