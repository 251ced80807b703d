// A small SVG chart of backup size (bars) and duration (line) over time,
// drawn by hand: no library, no inline styles (classes from style.css).

const NS = 'http://www.w3.org/2000/svg';

function el(name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/* A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/* Draws into container (emptied first). points: [{id, at: Date, size, duration}]
 * oldest first. fmt: {bytes(n), secs(s), date(d, spanMs)}. Returns the <svg>. */
export function drawChart(container, points, fmt) {
  container.replaceChildren();
  const width = Math.max(280, Math.floor(container.clientWidth || 600));
  const height = 170;
  const m = { l: 58, r: 52, t: 12, b: 26 };
  const w = width - m.l - m.r, h = height - m.t - m.b;
  const titleId = 'chart-title-' + Math.random().toString(36).slice(2, 8);
  const descId = titleId + '-d';
  const svg = el('svg', {
    class: 'chart', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-labelledby': `${titleId} ${descId}`,
  });
  svg.append(el('title', { id: titleId }, 'Backup size and duration over time'));
  const sizes = points.map(p => p.size), durs = points.map(p => p.duration || 0);
  // dates alone, or with the time when the points span less than two days
  const span = points.length ? points[points.length - 1].at - points[0].at : 0;
  const date = d => fmt.date(d, span);
  const smax = niceMax(Math.max(0, ...sizes)), dmax = niceMax(Math.max(0, ...durs));
  svg.append(el('desc', { id: descId }, points.length
    ? `${points.length} completed backups from ${date(points[0].at)} to ${date(points[points.length - 1].at)}; ` +
      `size ${fmt.bytes(Math.min(...sizes))} to ${fmt.bytes(Math.max(...sizes))}; ` +
      `duration ${fmt.secs(Math.min(...durs))} to ${fmt.secs(Math.max(...durs))}.`
    : 'No completed backups yet.'));

  const g = el('g', { transform: `translate(${m.l},${m.t})` });
  svg.append(g);
  for (let i = 0; i <= 4; i++) {
    const y = Math.round(h - (h * i) / 4) + 0.5;
    g.append(el('line', { class: i ? 'grid' : 'axis', x1: 0, x2: w, y1: y, y2: y }));
    if (!points.length) continue; // no scale without data
    g.append(el('text', { x: -6, y: y + 4, 'text-anchor': 'end' }, fmt.bytes((smax * i) / 4)));
    g.append(el('text', { x: w + 6, y: y + 4, 'text-anchor': 'start' }, fmt.secs((dmax * i) / 4)));
  }
  if (!points.length) {
    g.append(el('text', { x: w / 2, y: h / 2, 'text-anchor': 'middle' }, 'No completed backups yet'));
    container.append(svg);
    return svg;
  }
  const n = points.length;
  const slot = w / n;
  const bw = Math.max(2, Math.min(28, slot * 0.6));
  const line = [];
  points.forEach((p, i) => {
    const cx = slot * i + slot / 2;
    const bh = Math.max(1, (p.size / smax) * h);
    const bar = el('rect', { class: 'bar-size', x: cx - bw / 2, y: h - bh, width: bw, height: bh, rx: 1.5 });
    bar.append(el('title', {}, `${p.id}\n${fmt.date(p.at, 0)} UTC\nsize ${fmt.bytes(p.size)}, took ${fmt.secs(p.duration || 0)}`));
    g.append(bar);
    line.push([cx, h - ((p.duration || 0) / dmax) * h]);
  });
  g.append(el('path', { class: 'line-dur', d: line.map((q, i) => (i ? 'L' : 'M') + q[0].toFixed(1) + ' ' + q[1].toFixed(1)).join(' ') }));
  for (const [x, y] of line) g.append(el('circle', { class: 'dot-dur', cx: x.toFixed(1), cy: y.toFixed(1), r: 2.5 }));
  // first and last dates under the axis
  g.append(el('text', { x: 0, y: h + 18, 'text-anchor': 'start' }, date(points[0].at)));
  if (n > 1) g.append(el('text', { x: w, y: h + 18, 'text-anchor': 'end' }, date(points[n - 1].at)));
  container.append(svg);
  return svg;
}
