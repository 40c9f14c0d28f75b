// Model text to DOM with a small Markdown subset. Every piece of text goes through textContent: model output
// can never become markup, attributes or script.

/** Replaces the children of container with the rendering of text. */
export function renderMarkdown(container, text) {
  container.replaceChildren(render(text).fragment);
}

/**
 * Draws a text that only grows, as an answer does while it streams, the same as renderMarkdown would: the blocks
 * before the last finished blank line outside a fence can no longer change, so they stay in the DOM and only the
 * blocks after it are drawn again. Redrawing the whole answer on every delta made a long one quadratic.
 */
export class GrowingMarkdown {
  #container;
  #keptChars = 0; // the text up to here is drawn for good...
  #keptNodes = 0; // ...as this many first children of the container

  constructor(container) {
    this.#container = container;
  }

  render(text) {
    const { fragment, finalChars, finalNodes } = render(text.slice(this.#keptChars));
    const container = this.#container;
    while (container.childNodes.length > this.#keptNodes) container.lastChild.remove();
    container.append(fragment);
    this.#keptChars += finalChars;
    this.#keptNodes += finalNodes;
  }
}

/**
 * The blocks of text, and where the last finished blank line outside a fence ends (finalChars) with the number of
 * blocks before it (finalNodes): appending to text changes nothing up to there, as each block is decided by its
 * own lines and the blank line ends it.
 */
function render(text) {
  const fragment = document.createDocumentFragment();
  const lines = text.split('\n');
  let finalChars = 0;
  let finalNodes = 0;
  let i = 0;
  let offset = 0; // where line i starts in text
  const next = () => { offset += lines[i].length + 1; i++; };
  while (i < lines.length) {
    const line = lines[i];
    if (line.startsWith('```')) {
      const code = [];
      for (next(); i < lines.length && !lines[i].startsWith('```'); next()) code.push(lines[i]);
      if (i < lines.length && lines[i].slice(3).trim() !== '') {
        // Text right after a closing fence is kept, as text: the line goes on without its fence.
        offset += 3;
        lines[i] = lines[i].slice(3);
      } else if (i < lines.length) {
        next(); // the closing fence; at the end, a fence still streaming
      }
      const pre = el('pre');
      pre.append(el('code', code.join('\n')));
      fragment.append(pre);
    } else if (/^\s*[-*] /.test(line)) {
      const list = el('ul');
      for (; i < lines.length && /^\s*[-*] /.test(lines[i]); next()) list.append(inline(el('li'), lines[i].replace(/^\s*[-*] /, '')));
      fragment.append(list);
    } else if (/^\s*\d+[.)] /.test(line)) {
      // A list goes on from its first number: a model separating items with blank lines writes one list per item.
      const list = el('ol');
      const start = Number(line.match(/\d+/)[0]);
      if (start !== 1 && Number.isSafeInteger(start)) list.start = start;
      for (; i < lines.length && /^\s*\d+[.)] /.test(lines[i]); next()) list.append(inline(el('li'), lines[i].replace(/^\s*\d+[.)] /, '')));
      fragment.append(list);
    } else if (/^#{1,4} /.test(line)) {
      fragment.append(inline(el('h3'), line.replace(/^#+ /, '')));
      next();
    } else if (line.trim() === '') {
      const finished = i < lines.length - 1; // a line break follows, so no more text joins this line
      next();
      if (finished) {
        finalChars = offset;
        finalNodes = fragment.childNodes.length;
      }
    } else {
      const paragraph = [];
      for (; i < lines.length && lines[i].trim() !== '' && !/^(```|\s*[-*] |\s*\d+[.)] |#{1,4} )/.test(lines[i]); next()) paragraph.push(lines[i]);
      const p = el('p');
      paragraph.forEach((part, n) => {
        if (n > 0) p.append(el('br'));
        inline(p, part);
      });
      fragment.append(p);
    }
  }
  return { fragment, finalChars, finalNodes };
}

/** `code`, **strong** and *emphasis*; anything else is literal text. */
function inline(parent, text) {
  const pattern = /`([^`]+)`|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*/g;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    parent.append(document.createTextNode(text.slice(last, match.index)));
    if (match[1] !== undefined) parent.append(el('code', match[1]));
    else if (match[2] !== undefined) parent.append(el('strong', match[2]));
    else parent.append(el('em', match[3]));
    last = match.index + match[0].length;
  }
  parent.append(document.createTextNode(text.slice(last)));
  return parent;
}

export function el(tag, text) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  return node;
}
