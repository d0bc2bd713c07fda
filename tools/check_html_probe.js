// Evaluated by tools/check_html.py in each page of the built book, after load and MathJax.
// Returns {kind: [details]} for everything a reader would see wrong (see that script's docstring).
(() => {
  const out = {images: [], tracebacks: [], math: [], glue: [], overflow: []};
  const main = document.querySelector('main') || document.body;
  const snip = (s, n = 90) => (s || '').replace(/\s+/g, ' ').trim().slice(0, n);
  const where = (el) => {
    let h = el, t = null;
    while (h && !t) {
      let p = h.previousElementSibling;
      while (p && !t) { if (/^H[1-6]$/.test(p.tagName)) t = p; else { const q = p.querySelector && p.querySelector('h1,h2,h3,h4,h5,h6'); if (q) t = q; } p = p.previousElementSibling; }
      h = h.parentElement;
    }
    return t ? snip(t.textContent.replace(/#$/, ''), 60) : '(top)';
  };
  for (const img of document.images) {
    if (!img.complete || img.naturalWidth === 0) out.images.push(`${img.getAttribute('src')} (alt: ${snip(img.alt, 40)}) under "${where(img)}"`);
  }
  for (const el of main.querySelectorAll('.cell_output .traceback, .cell_output .output.error, .cell_output .output.stderr')) {
    out.tracebacks.push(`${el.className}: ${snip(el.textContent, 120)} under "${where(el)}"`);
  }
  for (const el of main.querySelectorAll('.cell_output')) {
    if (/Traceback \(most recent call last\)/.test(el.textContent) && !el.querySelector('.traceback'))
      out.tracebacks.push(`traceback text: ${snip(el.textContent, 120)} under "${where(el)}"`);
  }
  for (const el of main.querySelectorAll('.math')) {
    if (!el.querySelector('mjx-container') && el.tagName !== 'MJX-CONTAINER')
      out.math.push(`not typeset: ${snip(el.textContent)} under "${where(el)}"`);
  }
  for (const el of main.querySelectorAll('mjx-merror')) {
    out.math.push(`MathJax error: ${snip(el.getAttribute('data-mjx-error') || el.textContent)} under "${where(el)}"`);
  }
  for (const el of main.querySelectorAll('mjx-container [style*="color: red"], mjx-container [mathcolor="red"]')) {
    out.math.push(`undefined macro (red): ${snip(el.textContent)} under "${where(el)}"`);
  }
  const skip = 'pre, code, script, style, textarea, mjx-container, .math, .highlight, kbd, samp';
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT, {
    acceptNode: (n) => n.parentElement && n.parentElement.closest(skip) ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT,
  });
  const tex = /\\\(|\\\)|\\\[|\\\]|\$\$|\$[^$\s][^$]*\\[A-Za-z]+[^$]*\$/;
  const glue = /\{glue(:[a-z]+)?\}`|\{glue(:[a-z]+)?\}/;
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const t = n.textContent;
    if (tex.test(t)) out.math.push(`raw TeX in text: "${snip(t)}" under "${where(n.parentElement)}"`);
    if (glue.test(t)) out.glue.push(`glue role as text: "${snip(t)}" under "${where(n.parentElement)}"`);
  }
  for (const el of main.querySelectorAll('.problematic')) out.glue.push(`problematic node: "${snip(el.textContent)}" under "${where(el)}"`);
  for (const pre of main.querySelectorAll('pre')) {
    if (pre.closest('mjx-container')) continue;
    const over = pre.scrollWidth - pre.clientWidth;
    if (over > 1 && pre.clientWidth > 0) {
      const lines = pre.textContent.split('\n');
      let widest = '';
      for (const l of lines) if (l.length > widest.length) widest = l;
      const kind = pre.closest('.cell_output') ? 'output' : (pre.closest('.cell_input') ? 'code cell' : 'code block');
      out.overflow.push(`${kind}: ${over}px too wide (box ${pre.clientWidth}px), widest line ${widest.length} chars: "${snip(widest, 70)}" under "${where(pre)}"`);
    }
  }
  return out;
})()
