// Model text to DOM with a small Markdown subset. Every piece of text goes through textContent: model output
// can never become markup, attributes or script.

/** Replaces the children of container with the rendering of text. */
export function renderMarkdown(container, text) {
  const fragment = document.createDocumentFragment();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length;) {
    const line = lines[i];
    if (line.startsWith('```')) {
      const code = [];
      for (i++; i < lines.length && !lines[i].startsWith('```'); i++) code.push(lines[i]);
      if (i < lines.length && lines[i].slice(3).trim() !== '') {
        lines[i] = lines[i].slice(3); // text right after a closing fence is kept, as text
      } else {
        i++; // the closing fence, or the end of a fence still streaming
      }
      const pre = el('pre');
      pre.append(el('code', code.join('\n')));
      fragment.append(pre);
    } else if (/^\s*[-*] /.test(line)) {
      const list = el('ul');
      for (; i < lines.length && /^\s*[-*] /.test(lines[i]); i++) list.append(inline(el('li'), lines[i].replace(/^\s*[-*] /, '')));
      fragment.append(list);
    } else if (/^\s*\d+[.)] /.test(line)) {
      const list = el('ol');
      for (; i < lines.length && /^\s*\d+[.)] /.test(lines[i]); i++) list.append(inline(el('li'), lines[i].replace(/^\s*\d+[.)] /, '')));
      fragment.append(list);
    } else if (/^#{1,4} /.test(line)) {
      fragment.append(inline(el('h3'), line.replace(/^#+ /, '')));
      i++;
    } else if (line.trim() === '') {
      i++;
    } else {
      const paragraph = [];
      for (; i < lines.length && lines[i].trim() !== '' && !/^(```|\s*[-*] |\s*\d+[.)] |#{1,4} )/.test(lines[i]); i++) paragraph.push(lines[i]);
      const p = el('p');
      paragraph.forEach((part, n) => {
        if (n > 0) p.append(el('br'));
        inline(p, part);
      });
      fragment.append(p);
    }
  }
  container.replaceChildren(fragment);
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
