// The budget meter: prompt / completion / total against budget_max, the phase, and the states that stop a chat.

const $ = (id) => document.getElementById(id);
const number = new Intl.NumberFormat('en');

export class BudgetMeter {
  #section = $('meter');
  #countdown = null;
  onRetryAllowed = () => {};

  /** One token_count event: shown at once, so every figure the API sends is on screen in turn. */
  update({ prompt, completion, total, budget_max: budgetMax, remaining, phase, should_summarize: shouldSummarize }) {
    this.#show(prompt, completion, total, budgetMax);
    $('meter-phase').textContent = phase;
    this.#section.dataset.phase = phase;
    $('meter-warning').hidden = !shouldSummarize;
    if (remaining <= 0) this.exhausted(total, budgetMax);
  }

  /** The final usage of a run (done). */
  finish(usage, finishReason) {
    this.#show(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, usage.budget_max);
    $('meter-warning').hidden = !usage.should_summarize;
    if (finishReason === 'budget_exhausted' || usage.budget_remaining <= 0) {
      this.exhausted(usage.total_tokens, usage.budget_max);
    } else if (this.#section.dataset.state !== 'limited') {
      this.#state('done', '');
    }
  }

  exhausted(total, budgetMax) {
    this.#state('exhausted', `Budget exhausted: ${number.format(total)} of ${number.format(budgetMax)} tokens used. The answer stopped there; send again with a larger budget.`);
  }

  /** 429: the reason and a countdown to when a retry is allowed. */
  limited(error) {
    clearInterval(this.#countdown);
    const what = error.code === 'quota-exhausted' ? 'Token quota exhausted' : 'Rate limited';
    const seconds = error.retryAfterSeconds;
    if (seconds === null) {
      this.#state('limited', `${what}: ${error.message}`);
      return;
    }
    const until = Date.now() + seconds * 1000;
    let started = false;
    const tick = () => {
      const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      if (left === 0) {
        clearInterval(this.#countdown);
        this.#state('idle', '', 'You can send again.');
        this.onRetryAllowed();
        return;
      }
      const clock = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
      const text = `${what}. You can send again in ${clock} (at ${new Date(until).toLocaleTimeString()}).`;
      // Announced when it starts and when it ends, not every second.
      this.#state('limited', text, started ? null : text);
      started = true;
    };
    tick();
    this.#countdown = setInterval(tick, 1000);
  }

  get limitedNow() { return this.#section.dataset.state === 'limited'; }

  /** A blank meter for the next user of the page: a 429 countdown of the one before ends too. */
  clear(budgetMax) {
    clearInterval(this.#countdown);
    this.#state('idle', '');
    this.reset(budgetMax);
  }

  reset(budgetMax) {
    this.#show(0, 0, 0, budgetMax);
    $('meter-phase').textContent = 'idle';
    this.#section.dataset.phase = 'idle';
    $('meter-warning').hidden = true;
    if (!this.limitedNow) this.#state('idle', '');
  }

  #show(prompt, completion, total, budgetMax) {
    $('meter-prompt').textContent = number.format(prompt);
    $('meter-completion').textContent = number.format(completion);
    $('meter-total').textContent = number.format(total);
    $('meter-max').textContent = budgetMax ? number.format(budgetMax) : '–';
    const bar = $('meter-bar');
    if (budgetMax) {
      bar.max = budgetMax;
      bar.high = budgetMax * 0.9;
    }
    bar.value = total;
  }

  /**
   * The meter's state, shown as text; the announcement (the text unless told otherwise, null for none) goes to the
   * one live region of the meter. The figures are no live region: a screen reader would read out every token_count.
   */
  #state(state, text, announcement = text) {
    this.#section.dataset.state = state;
    $('meter-state').textContent = text;
    if (announcement !== null && $('meter-announce').textContent !== announcement) $('meter-announce').textContent = announcement;
  }
}
