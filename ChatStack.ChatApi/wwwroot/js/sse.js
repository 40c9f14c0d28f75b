// Server-sent events over fetch: EventSource cannot POST or send an Authorization header.

/** Yields {id, event, data} for each event of a text/event-stream body, per the WHATWG parsing rules. */
export async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let id = null, event = '', data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
        // A lone \r at the very end may be half of \r\n: wait for the next chunk.
        if (buffer[end] === '\r' && end === buffer.length - 1) break;
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer.startsWith('\r\n', end) ? 2 : 1));
        if (line === '') {
          if (data.length > 0) yield { id, event: event || 'message', data: data.join('\n') };
          event = ''; data = [];
          continue;
        }
        if (line.startsWith(':')) continue; // heartbeat
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? '' : line.slice(colon + 1);
        if (text.startsWith(' ')) text = text.slice(1);
        if (field === 'id') id = text;
        else if (field === 'event') event = text;
        else if (field === 'data') data.push(text);
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/** The sequence number of an event id "{streamId}.{sequence}", or -1. */
export function sequenceOf(eventId) {
  const dot = eventId ? eventId.lastIndexOf('.') : -1;
  const n = dot < 0 ? NaN : Number(eventId.slice(dot + 1));
  return Number.isSafeInteger(n) ? n : -1;
}
