/* Conveyor web console.
 *
 * A single page served by the node at /console/. It reads and operates the node only
 * through the admin API (/api/v1/, relative to this page, so it also works behind a
 * proxy that mounts the node under a prefix). Vanilla JavaScript, SVG charts, no
 * dependencies.
 *
 * Live updates: the page polls every POLL_MS (the list or the open queue, and the
 * history points it has not seen, with ?since_ms=), one request at a time, and pauses
 * while the tab is hidden. The node keeps 15 minutes of history (a point every 5 s),
 * so a freshly opened page draws full charts at once.
 *
 * Routes: #/ is the overview of all queues, #/queues/NAME one queue, #/cluster the
 * cluster's nodes and partitions (only when the node is in cluster mode: GET
 * /api/v1/cluster answers 200; a single node answers 404 and the link stays hidden).
 */
'use strict';

(() => {
  const POLL_MS = 2000;
  const NODE_EVERY = 5; // node info every 5th poll
  const WINDOW_MS = 15 * 60 * 1000;
  const REQUEST_TIMEOUT_MS = 10000;
  const TOAST_MS = 5000;
  const PEEK_EVERY_MS = 15000; // the message list is refreshed at least this often
  const API = new URL('../api/v1/', location.href);
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // ------------------------------------------------------------------ DOM helpers
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    setProps(el, props);
    add(el, children);
    return el;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) el.setAttribute(k, String(v));
    }
    add(el, children);
    return el;
  }

  function setProps(el, props) {
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }

  function add(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
  }

  function setText(el, text) {
    const t = String(text);
    if (el.textContent !== t) el.textContent = t;
  }

  // ------------------------------------------------------------------ formatting
  const numberFormat = new Intl.NumberFormat();
  const compactFormat = new Intl.NumberFormat(undefined, {
    notation: 'compact',
    maximumFractionDigits: 1,
  });

  function fmtInt(n) {
    return n === null || n === undefined ? '—' : numberFormat.format(n);
  }

  function fmtCompact(n) {
    if (n === null || n === undefined) return '—';
    if (Math.abs(n) < 1000) return fmtNumber(n);
    return compactFormat.format(n);
  }

  function fmtNumber(n) {
    if (n === null || n === undefined) return '—';
    if (n === 0) return '0';
    const a = Math.abs(n);
    if (a < 0.01) return n.toFixed(3).replace(/0+$/, '');
    if (a < 10) return String(Math.round(n * 100) / 100);
    if (a < 100) return String(Math.round(n * 10) / 10);
    return numberFormat.format(Math.round(n));
  }

  function fmtRate(r) {
    if (r === null || r === undefined) return '—';
    if (r === 0) return '0/s';
    if (r < 0.01) return '<0.01/s';
    return fmtCompact(r) + '/s';
  }

  function fmtDuration(s) {
    if (s === null || s === undefined) return '—';
    if (s < 1) return s <= 0 ? '0s' : `${Math.round(s * 1000)}ms`;
    s = Math.floor(s);
    if (s < 60) return s + 's';
    const d = Math.floor(s / 86400);
    const hr = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    if (d) return hr ? `${d}d ${hr}h` : `${d}d`;
    if (hr) return m ? `${hr}h ${m}m` : `${hr}h`;
    return sec ? `${m}m ${sec}s` : `${m}m`;
  }

  function fmtAge(s, messages) {
    return messages === 0 ? '—' : fmtDuration(s);
  }

  function fmtBytes(b) {
    if (b === null || b === undefined) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = b;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return i === 0 ? `${v} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
  }

  function fmtClock(ms, seconds) {
    const opts = { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
    if (seconds) opts.second = '2-digit';
    return new Date(ms).toLocaleTimeString([], opts);
  }

  function fmtDateTime(ms) {
    if (!ms) return '—';
    return new Date(ms).toLocaleString([], { hourCycle: 'h23' });
  }

  function fmtAgo(ms) {
    if (!ms) return '—';
    const s = Math.max(0, (serverNow() - ms) / 1000);
    return fmtDuration(s) + ' ago';
  }

  /** A message id short enough for a table cell: its start and its end, which differ
   * between messages sent close together. */
  function shortId(id) {
    return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id;
  }

  function plural(n, word, words) {
    return `${fmtInt(n)} ${n === 1 ? word : words || word + 's'}`;
  }

  // ------------------------------------------------------------------ the admin API
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const init = { method, headers: { Accept: 'application/json' }, cache: 'no-store' };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
    init.signal = abort.signal;
    let resp;
    try {
      resp = await fetch(new URL(path, API), init);
    } catch (e) {
      throw new ApiError(0, 'Unreachable', 'The node does not answer.');
    } finally {
      clearTimeout(timer);
    }
    let data = null;
    try {
      data = await resp.json();
    } catch (e) {
      data = null;
    }
    if (!resp.ok) {
      const err = (data && data.error) || {};
      throw new ApiError(resp.status, err.code || `HTTP ${resp.status}`, err.message || resp.statusText);
    }
    return data;
  }

  const q = encodeURIComponent;

  // ------------------------------------------------------------------ shared state
  const store = {
    node: null,
    skewMs: 0, // server clock minus this browser's
    queues: null, // the last GET /queues
    history: new Map(), // queue -> points, oldest first
    allSince: 0, // newest t_ms of the last GET /history
    intervalS: 5,
    cluster: null, // the last GET /cluster
    clustered: undefined, // undefined until asked (again after the node restarted)
  };

  function serverNow() {
    return Date.now() + store.skewMs;
  }

  function mergeHistory(name, points, meta) {
    if (meta) store.intervalS = meta.interval_s;
    let arr = store.history.get(name) || [];
    const last = arr.length ? arr[arr.length - 1].t_ms : 0;
    const fresh = points.filter((p) => p.t_ms > last);
    if (fresh.length) arr = arr.concat(fresh);
    const cutoff = serverNow() - WINDOW_MS - 2 * store.intervalS * 1000;
    let i = 0;
    while (i < arr.length && arr[i].t_ms < cutoff) i += 1;
    if (i) arr = arr.slice(i);
    store.history.set(name, arr);
    return arr;
  }

  function lastPoint(name) {
    const arr = store.history.get(name);
    return arr && arr.length ? arr[arr.length - 1] : null;
  }

  function lastValue(name, key) {
    const arr = store.history.get(name) || [];
    for (let i = arr.length - 1; i >= 0; i -= 1) {
      if (arr[i][key] !== null && arr[i][key] !== undefined) return arr[i][key];
    }
    return null;
  }

  async function loadAllHistory() {
    const data = await api('GET', `history?since_ms=${store.allSince}`);
    const names = new Set();
    let newest = store.allSince;
    for (const qh of data.queues) {
      names.add(qh.queue);
      mergeHistory(qh.queue, qh.points, qh);
      for (const p of qh.points) newest = Math.max(newest, p.t_ms);
    }
    for (const name of [...store.history.keys()]) {
      if (!names.has(name) && (store.queues || []).every((x) => x.name !== name)) {
        store.history.delete(name);
      }
    }
    store.allSince = newest;
  }

  async function loadQueueHistory(name) {
    const last = lastPoint(name);
    const data = await api('GET', `queues/${q(name)}/history?since_ms=${last ? last.t_ms : 0}`);
    mergeHistory(name, data.points, data);
  }

  async function loadNode() {
    const before = Date.now();
    const node = await api('GET', 'node');
    const after = Date.now();
    if (store.node && store.node.started_ms !== node.started_ms) store.clustered = undefined;
    store.node = node;
    store.skewMs = node.started_ms + node.uptime_s * 1000 - (before + after) / 2;
    renderNode();
  }

  /** GET /cluster: the status, or null when the node is not in cluster mode (404). */
  async function loadCluster() {
    try {
      store.cluster = await api('GET', 'cluster');
    } catch (e) {
      if (e.status !== 404) throw e;
      store.cluster = null;
    }
    store.clustered = store.cluster !== null;
    document.getElementById('nav-cluster').hidden = !store.clustered;
    return store.cluster;
  }

  function renderNode() {
    const el = document.getElementById('node-info');
    const n = store.node;
    if (!n) return;
    el.replaceChildren(
      h('span', { class: 'node-id', title: `node ${n.node_id}` }, 'node ', h('code', { text: n.node_id.slice(0, 12) })),
      h('span', { text: `v${n.version}` }),
      h('span', { title: `started ${fmtDateTime(n.started_ms)}`, text: `up ${fmtDuration(n.uptime_s)}` }),
      h('span', { title: 'fsync policy', text: `fsync ${n.fsync}` }),
      h('span', { class: 'addr', title: 'HTTP and native addresses', text: n.http_address }),
    );
  }

  // ------------------------------------------------------------------ status, toasts
  let lastOk = 0;

  function setStatus(state, detail) {
    const el = document.getElementById('status');
    el.dataset.state = state;
    const text = el.querySelector('.status-text');
    if (state === 'live') {
      lastOk = Date.now();
      setText(text, 'Live');
      el.title = `Updated ${fmtClock(Date.now(), true)}, every ${POLL_MS / 1000} s`;
    } else if (state === 'paused') {
      setText(text, 'Paused');
      el.title = 'Updates pause while this tab is hidden';
    } else if (state === 'error') {
      setText(text, 'Offline');
      el.title = `${detail || 'The node does not answer'} (last update ${lastOk ? fmtClock(lastOk, true) : 'never'}); retrying`;
    }
  }

  function toast(kind, title, message) {
    const box = document.getElementById('toasts');
    const el = h(
      'div',
      { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
      h('strong', { text: title }),
      message ? h('span', { text: message }) : null,
      h('button', { class: 'toast-close', type: 'button', 'aria-label': 'Dismiss', onclick: () => el.remove() }, '×'),
    );
    box.append(el);
    setTimeout(() => el.remove(), kind === 'error' ? 2 * TOAST_MS : TOAST_MS);
  }

  // ------------------------------------------------------------------ dialog
  function confirmDialog({ title, body, ok, danger }) {
    const dlg = document.getElementById('dialog');
    document.getElementById('dialog-title').textContent = title;
    document.getElementById('dialog-body').replaceChildren(...[body].flat());
    const okBtn = document.getElementById('dialog-ok');
    const cancel = document.getElementById('dialog-cancel');
    okBtn.textContent = ok;
    okBtn.className = `btn ${danger ? 'danger' : 'primary'}`;
    return new Promise((resolve) => {
      const done = (value) => {
        okBtn.onclick = null;
        cancel.onclick = null;
        dlg.onclose = null;
        if (dlg.open) dlg.close();
        resolve(value);
      };
      okBtn.onclick = () => done(true);
      cancel.onclick = () => done(false);
      dlg.onclose = () => done(false);
      dlg.showModal();
      (danger ? cancel : okBtn).focus();
    });
  }

  // ------------------------------------------------------------------ charts
  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
    return 10 * p;
  }

  // steps of a time axis, in seconds: 1 s .. 1 day
  const DURATION_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

  function yScale(max, integer, duration) {
    if (!(max > 0)) max = integer || duration ? 4 : 1;
    let step = niceStep(max / 4);
    if (duration && max / 4 >= 1) step = DURATION_STEPS.find((d) => d >= max / 4) || Math.ceil(max / 4 / 86400) * 86400;
    if (integer) step = Math.max(1, Math.ceil(step));
    const top = Math.max(step, Math.ceil(max / step) * step);
    const ticks = [];
    for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
    return { top, ticks };
  }

  /** Segments of [t, v] for one series: broken at nulls and at gaps in sampling. */
  function segments(points, key, gapMs) {
    const out = [];
    let cur = [];
    let prevT = null;
    for (const p of points) {
      const v = p[key];
      if (v === null || v === undefined || (prevT !== null && p.t_ms - prevT > gapMs)) {
        if (cur.length) out.push(cur);
        cur = [];
      }
      if (v !== null && v !== undefined) cur.push([p.t_ms, v]);
      prevT = p.t_ms;
    }
    if (cur.length) out.push(cur);
    return out;
  }

  class TimeChart {
    /** opts: {title, series: [{key, label}], fmt, integer, live} — live: gauges that get a
     * point at "now" from the latest stats. */
    constructor(opts) {
      this.opts = opts;
      this.points = [];
      this.now = serverNow();
      this.legendValues = [];
      const legend = h('div', { class: 'legend' });
      opts.series.forEach((s, i) => {
        const value = h('span', { class: 'legend-value', text: '—' });
        this.legendValues.push(value);
        legend.append(
          h('span', { class: 'legend-item' }, h('span', { class: `swatch series-${s.color ?? i}` }), h('span', { text: s.label }), value),
        );
      });
      this.plot = h('div', { class: 'plot' });
      this.tip = h('div', { class: 'chart-tip', hidden: true });
      this.el = h(
        'section',
        { class: 'panel chart', dataset: { chart: opts.id } },
        h('header', { class: 'chart-head' }, h('h3', { text: opts.title }), legend),
        h('div', { class: 'plot-wrap' }, this.plot, this.tip),
      );
      this.resize = new ResizeObserver(() => this.render());
      this.resize.observe(this.plot);
    }

    update(points, now) {
      this.points = points;
      this.now = now;
      this.render();
    }

    destroy() {
      this.resize.disconnect();
    }

    render() {
      const o = this.opts;
      const W = Math.max(240, Math.floor(this.plot.clientWidth || 480));
      const H = o.height || 168;
      const m = { l: 46, r: 10, t: 10, b: 22 };
      const t1 = this.now;
      const t0 = t1 - WINDOW_MS;
      const pw = W - m.l - m.r;
      const ph = H - m.t - m.b;
      const x = (t) => m.l + ((t - t0) / WINDOW_MS) * pw;
      const pts = this.points.filter((p) => p.t_ms >= t0 - 1);
      let max = 0;
      for (const p of pts) for (const s of o.series) if (p[s.key] > max) max = p[s.key];
      const { top, ticks } = yScale(max, o.integer, o.duration);
      const y = (v) => m.t + ph - (v / top) * ph;
      const root = svg('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', role: 'img', 'aria-label': o.title });
      const grid = svg('g', { class: 'grid' });
      for (const v of ticks) {
        const yy = Math.round(y(v)) + 0.5;
        grid.append(svg('line', { x1: m.l, x2: W - m.r, y1: yy, y2: yy }));
        grid.append(svg('text', { x: m.l - 6, y: yy + 3.5, class: 'ylabel' }, o.fmt(v)));
      }
      const step = 5 * 60 * 1000;
      for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
        const xx = Math.round(x(t)) + 0.5;
        grid.append(svg('line', { x1: xx, x2: xx, y1: m.t, y2: m.t + ph, class: 'vgrid' }));
        grid.append(svg('text', { x: xx, y: H - 6, class: 'xlabel' }, fmtClock(t)));
      }
      root.append(grid);
      const gapMs = 2.5 * store.intervalS * 1000;
      o.series.forEach((s, i) => {
        const cls = `series-${s.color ?? i}`;
        const segs = segments(pts, s.key, gapMs);
        let count = 0;
        let d = '';
        let area = '';
        for (const seg of segs) {
          count += seg.length;
          const coords = seg.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
          d += `M${coords.join('L')}`;
          area += `M${x(seg[0][0]).toFixed(1)},${y(0)}L${coords.join('L')}L${x(seg[seg.length - 1][0]).toFixed(1)},${y(0)}Z`;
          if (seg.length === 1) root.append(svg('circle', { cx: x(seg[0][0]), cy: y(seg[0][1]), r: 2.5, class: `dot ${cls}` }));
        }
        if (area && o.area && o.area.includes(s.key)) root.append(svg('path', { d: area, class: `area ${cls}` }));
        root.append(svg('path', { d: d || 'M0,0', class: `line ${cls}`, 'data-series': s.key, 'data-points': count }));
        const last = [...pts].reverse().find((p) => p[s.key] !== null && p[s.key] !== undefined);
        setText(this.legendValues[i], last ? o.fmt(last[s.key]) : '—');
      });
      if (!pts.length) {
        root.append(svg('text', { x: m.l + pw / 2, y: m.t + ph / 2, class: 'nodata' }, `No samples yet: the node takes one every ${store.intervalS} s`));
      }
      const cursor = svg('g', { class: 'cursor', visibility: 'hidden' });
      cursor.append(svg('line', { y1: m.t, y2: m.t + ph }));
      root.append(cursor);
      const hit = svg('rect', { x: m.l, y: m.t, width: pw, height: ph, class: 'hit' });
      hit.addEventListener('mousemove', (ev) => this.hover(ev, { x, y, pts, cursor, m, W }));
      hit.addEventListener('mouseleave', () => {
        cursor.setAttribute('visibility', 'hidden');
        this.tip.hidden = true;
      });
      root.append(hit);
      this.plot.replaceChildren(root);
    }

    hover(ev, { x, y, pts, cursor, m, W }) {
      if (!pts.length) return;
      const rect = ev.currentTarget.ownerSVGElement.getBoundingClientRect();
      const px = ev.clientX - rect.left;
      let best = pts[0];
      for (const p of pts) if (Math.abs(x(p.t_ms) - px) < Math.abs(x(best.t_ms) - px)) best = p;
      const cx = x(best.t_ms);
      cursor.setAttribute('visibility', 'visible');
      cursor.querySelector('line').setAttribute('x1', cx);
      cursor.querySelector('line').setAttribute('x2', cx);
      for (const c of cursor.querySelectorAll('circle')) c.remove();
      const rows = [h('div', { class: 'tip-time', text: fmtClock(best.t_ms, true) + (best.live ? ' (now)' : '') })];
      this.opts.series.forEach((s, i) => {
        const v = best[s.key];
        if (v !== null && v !== undefined) cursor.append(svg('circle', { cx, cy: y(v), r: 3.5, class: `dot series-${s.color ?? i}` }));
        rows.push(
          h('div', { class: 'tip-row' }, h('span', { class: `swatch series-${s.color ?? i}` }), h('span', { text: s.label }), h('b', { text: this.opts.fmt(v) })),
        );
      });
      this.tip.replaceChildren(...rows);
      this.tip.hidden = false;
      const left = cx + 14 + 170 > W ? cx - 14 - this.tip.offsetWidth : cx + 14;
      this.tip.style.left = `${Math.max(m.l, left)}px`;
      this.tip.style.top = `${m.t}px`;
    }
  }

  /** A small line chart without axes: the last 15 minutes of one or two series. */
  function sparkline(points, keys, now, opts) {
    const W = (opts && opts.width) || 112;
    const H = 26;
    const t0 = now - WINDOW_MS;
    const pts = points.filter((p) => p.t_ms >= t0);
    let max = 0;
    for (const p of pts) for (const k of keys) if (p[k] > max) max = p[k];
    const top = max > 0 ? max : 1;
    const x = (t) => ((t - t0) / WINDOW_MS) * (W - 2) + 1;
    const y = (v) => H - 2 - (v / top) * (H - 5);
    const root = svg('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: 'spark', 'aria-hidden': 'true' });
    root.append(svg('line', { x1: 0, x2: W, y1: H - 1.5, y2: H - 1.5, class: 'spark-base' }));
    const gapMs = 2.5 * store.intervalS * 1000;
    keys.forEach((k, i) => {
      const cls = `series-${(opts && opts.colors && opts.colors[i]) ?? i}`;
      let d = '';
      let count = 0;
      for (const seg of segments(pts, k, gapMs)) {
        count += seg.length;
        const c = seg.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
        if (seg.length === 1) c.push(`${(x(seg[0][0]) + 1.5).toFixed(1)},${y(seg[0][1]).toFixed(1)}`);
        d += `M${c.join('L')}`;
        if (i === 0 && keys.length === 1) {
          const x0 = x(seg[0][0]).toFixed(1);
          const x1 = x(seg[seg.length - 1][0]).toFixed(1);
          root.append(svg('path', { d: `M${x0},${H - 1.5}L${c.join('L')}L${x1},${H - 1.5}Z`, class: `area ${cls}` }));
        }
      }
      root.append(svg('path', { d: d || 'M0,0', class: `line ${cls}`, 'data-points': count }));
    });
    return root;
  }

  /** The sum over every queue, one point per sample time (all queues are sampled at
   * the same instants), plus a live point from the list's stats. */
  function totals(queues) {
    const byTime = new Map();
    const keys = ['messages', 'visible', 'inflight', 'delayed', 'sent_per_s', 'received_per_s', 'deleted_per_s'];
    for (const x of queues) {
      for (const p of store.history.get(x.name) || []) {
        let t = byTime.get(p.t_ms);
        if (!t) {
          t = { t_ms: p.t_ms };
          for (const k of keys) t[k] = null;
          byTime.set(p.t_ms, t);
        }
        for (const k of keys) if (p[k] !== null) t[k] = (t[k] || 0) + p[k];
      }
    }
    const out = [...byTime.values()].sort((a, b) => a.t_ms - b.t_ms);
    const live = { t_ms: serverNow(), live: true, messages: 0, visible: 0, inflight: 0, delayed: 0 };
    for (const x of queues) for (const k of ['messages', 'visible', 'inflight', 'delayed']) live[k] += x.stats[k];
    out.push(live);
    return out;
  }

  /** History points of a queue, plus a point at "now" from its live stats. */
  function withLive(name, stats) {
    const arr = store.history.get(name) || [];
    if (!stats) return arr;
    const live = { t_ms: serverNow(), live: true, ...stats };
    for (const k of ['sent_per_s', 'received_per_s', 'deleted_per_s', 'redelivered_per_s', 'dead_lettered_per_s', 'expired_per_s', 'redriven_per_s']) {
      live[k] = null;
    }
    return arr.concat([live]);
  }

  // ------------------------------------------------------------------ small widgets
  function badge(text, kind, title) {
    return h('span', { class: `badge ${kind || ''}`, title: title || null, text });
  }

  function queueLink(name) {
    return h('a', { href: `#/queues/${q(name)}`, text: name });
  }

  function statCard(key, label, hint) {
    const value = h('div', { class: 'stat-value', text: '—' });
    const sub = h('div', { class: 'stat-sub', text: hint || '' });
    const el = h('div', { class: 'stat', dataset: { stat: key } }, h('div', { class: 'stat-label', text: label }), value, sub);
    return { el, value, sub };
  }

  function isDlq(name) {
    return (store.queues || []).some((x) => x.dead_letter_queue === name);
  }

  const RATE_KEYS = {
    throughput: [
      { key: 'sent_per_s', label: 'Sent', color: 0 },
      { key: 'received_per_s', label: 'Received', color: 3 },
      { key: 'deleted_per_s', label: 'Deleted', color: 2 },
    ],
    trouble: [
      { key: 'redelivered_per_s', label: 'Redelivered', color: 1 },
      { key: 'dead_lettered_per_s', label: 'Dead-lettered', color: 4 },
      { key: 'expired_per_s', label: 'Expired', color: 5 },
      { key: 'redriven_per_s', label: 'Redriven out', color: 3 },
    ],
  };

  // ------------------------------------------------------------------ overview
  const COLUMNS = [
    { key: 'name', label: 'Queue', sort: (x) => x.name },
    { key: 'messages', label: 'Messages', num: true, sort: (x) => x.stats.messages },
    { key: 'visible', label: 'Visible', num: true, sort: (x) => x.stats.visible },
    { key: 'inflight', label: 'In flight', num: true, sort: (x) => x.stats.inflight },
    { key: 'delayed', label: 'Delayed', num: true, sort: (x) => x.stats.delayed },
    { key: 'oldest', label: 'Oldest', num: true, sort: (x) => (x.stats.messages ? x.stats.oldest_age_s : -1) },
    { key: 'rates', label: 'Sent / received per s', num: true, sort: (x) => lastValue(x.name, 'sent_per_s') || 0 },
    { key: 'bytes', label: 'Size', num: true, sort: (x) => x.stats.bytes },
  ];

  class OverviewView {
    constructor() {
      this.sortKey = localStorage.getItem('conveyor.sort') || 'name';
      this.sortDir = Number(localStorage.getItem('conveyor.sortDir') || 1);
      this.rows = new Map();
      this.filter = h('input', {
        type: 'search',
        class: 'filter',
        placeholder: 'Filter queues  ( / )',
        'aria-label': 'Filter queues by name',
        oninput: () => this.render(),
      });
      this.cards = {
        queues: statCard('queues', 'Queues'),
        messages: statCard('messages', 'Messages'),
        inflight: statCard('inflight', 'In flight'),
        oldest: statCard('oldest', 'Oldest message'),
        sent: statCard('sent', 'Sent'),
        received: statCard('received', 'Received'),
        dead: statCard('dead', 'Dead letters'),
      };
      this.head = h('tr');
      for (const c of COLUMNS) {
        const th = h('th', { class: c.num ? 'num' : null, scope: 'col', dataset: { col: c.key } });
        th.append(h('button', { type: 'button', class: 'sort', onclick: () => this.sortBy(c.key) }, c.label, h('span', { class: 'sort-mark', 'aria-hidden': 'true' })));
        this.head.append(th);
      }
      this.body = h('tbody');
      this.empty = h('div', { class: 'empty', hidden: true });
      this.charts = [
        new TimeChart({ id: 'total-depth', title: 'Messages, all queues', integer: true, fmt: fmtCompact, area: ['visible'], height: 132, series: [
          { key: 'visible', label: 'Visible', color: 0 },
          { key: 'inflight', label: 'In flight', color: 1 },
          { key: 'delayed', label: 'Delayed', color: 6 },
        ] }),
        new TimeChart({ id: 'total-rates', title: 'Messages per second, all queues', fmt: fmtCompact, height: 132, series: RATE_KEYS.throughput }),
      ];
      this.el = h(
        'div',
        { class: 'page overview' },
        h('div', { class: 'page-head' }, h('div', {}, h('h1', { text: 'Queues' }), h('p', { class: 'subtitle', id: 'overview-sub', text: 'Loading…' })), this.filter),
        h('div', { class: 'stats' }, Object.values(this.cards).map((c) => c.el)),
        h('div', { class: 'charts' }, this.charts.map((c) => c.el)),
        h('section', { class: 'panel table-panel' }, h('table', { class: 'queues' }, h('thead', {}, this.head), this.body), this.empty),
      );
      this.onKey = (ev) => {
        if (ev.key === '/' && document.activeElement === document.body) {
          ev.preventDefault();
          this.filter.focus();
        }
      };
      document.addEventListener('keydown', this.onKey);
      document.title = 'Queues · Conveyor';
    }

    destroy() {
      document.removeEventListener('keydown', this.onKey);
      for (const c of this.charts) c.destroy();
    }

    sortBy(key) {
      if (this.sortKey === key) this.sortDir = -this.sortDir;
      else {
        this.sortKey = key;
        this.sortDir = key === 'name' ? 1 : -1;
      }
      localStorage.setItem('conveyor.sort', this.sortKey);
      localStorage.setItem('conveyor.sortDir', String(this.sortDir));
      this.render();
    }

    async refresh() {
      const [list] = await Promise.all([api('GET', 'queues'), loadAllHistory()]);
      store.queues = list.queues;
      this.render();
    }

    render() {
      const queues = store.queues;
      if (!queues) return;
      const now = serverNow();
      let messages = 0;
      let inflight = 0;
      let oldest = 0;
      let sent = 0;
      let received = 0;
      let dead = 0;
      let deadQueues = 0;
      for (const x of queues) {
        messages += x.stats.messages;
        inflight += x.stats.inflight;
        if (x.stats.messages) oldest = Math.max(oldest, x.stats.oldest_age_s);
        sent += lastValue(x.name, 'sent_per_s') || 0;
        received += lastValue(x.name, 'received_per_s') || 0;
        if (isDlq(x.name)) {
          dead += x.stats.messages;
          deadQueues += 1;
        }
      }
      const c = this.cards;
      setText(c.queues.value, fmtInt(queues.length));
      setText(c.queues.sub, `${queues.filter((x) => x.fifo).length} FIFO`);
      setText(c.messages.value, fmtInt(messages));
      setText(c.messages.sub, fmtBytes(queues.reduce((a, x) => a + x.stats.bytes, 0)));
      setText(c.inflight.value, fmtInt(inflight));
      setText(c.inflight.sub, 'not yet deleted');
      setText(c.oldest.value, messages ? fmtDuration(oldest) : '—');
      setText(c.oldest.sub, 'across all queues');
      setText(c.sent.value, fmtRate(sent));
      setText(c.sent.sub, 'messages per second');
      setText(c.received.value, fmtRate(received));
      setText(c.received.sub, 'deliveries per second');
      setText(c.dead.value, fmtInt(dead));
      setText(c.dead.sub, `in ${plural(deadQueues, 'DLQ')}`);
      c.dead.el.classList.toggle('warn', dead > 0);
      const node = store.node ? ` on node ${store.node.node_id.slice(0, 12)}` : '';
      const sum = totals(queues);
      for (const chart of this.charts) chart.update(sum, now);
      setText(document.getElementById('overview-sub'), `${plural(queues.length, 'queue')}${node} · the last 15 minutes, updated live`);

      for (const th of this.head.children) {
        const on = th.dataset.col === this.sortKey;
        th.setAttribute('aria-sort', on ? (this.sortDir > 0 ? 'ascending' : 'descending') : 'none');
      }
      const needle = this.filter.value.trim().toLowerCase();
      const col = COLUMNS.find((x) => x.key === this.sortKey) || COLUMNS[0];
      const shown = queues
        .filter((x) => !needle || x.name.toLowerCase().includes(needle))
        .sort((a, b) => {
          const va = col.sort(a);
          const vb = col.sort(b);
          const cmp = typeof va === 'string' ? va.localeCompare(vb) : va - vb;
          return cmp * this.sortDir || a.name.localeCompare(b.name);
        });
      const seen = new Set();
      for (const x of shown) {
        seen.add(x.name);
        let row = this.rows.get(x.name);
        if (!row) {
          row = this.makeRow(x);
          this.rows.set(x.name, row);
        }
        this.updateRow(row, x, now);
        this.body.append(row.tr); // moves it into sorted order
      }
      for (const [name, row] of this.rows) {
        if (!seen.has(name)) {
          row.tr.remove();
          if (!queues.some((x) => x.name === name)) this.rows.delete(name);
        }
      }
      this.empty.hidden = shown.length > 0;
      if (!queues.length) {
        this.empty.replaceChildren(
          h('strong', { text: 'No queues yet.' }),
          h('span', {}, ' Create one with ', h('code', { text: 'conveyor queue create orders' }), ', an SQS client or the Python client.'),
        );
      } else if (!shown.length) {
        this.empty.replaceChildren(h('span', { text: `No queue matches “${this.filter.value}”.` }));
      }
    }

    makeRow(x) {
      const cells = {};
      const tr = h('tr', { dataset: { queue: x.name } });
      for (const c of COLUMNS) {
        const td = h('td', { class: c.num ? 'num' : null, dataset: { field: c.key } });
        cells[c.key] = td;
        tr.append(td);
      }
      const badges = [];
      if (x.fifo) badges.push(badge('FIFO', 'fifo', 'FIFO queue: ordered per message group, deduplicated'));
      const name = h('div', { class: 'qname' }, queueLink(x.name), badges);
      const sub = h('div', { class: 'qsub' });
      cells.name.append(name, sub);
      const value = (key, v = h('span', { class: 'v' })) => {
        const s = h('span', { class: 'sparkbox' });
        cells[key].append(h('div', { class: 'with-spark' }, s, v));
        return { v, s };
      };
      tr.addEventListener('click', (ev) => {
        if (ev.target.closest('a, button')) return;
        location.hash = `#/queues/${q(x.name)}`;
      });
      return {
        tr,
        cells,
        sub,
        dlqBadge: null,
        messages: value('messages'),
        inflight: value('inflight'),
        rates: value(
          'rates',
          h('span', { class: 'v rates' }, h('span', { class: 'series-0' }), h('span', { class: 'sep', text: '/' }), h('span', { class: 'series-3' })),
        ),
      };
    }

    updateRow(row, x, now) {
      const s = x.stats;
      const pts = withLive(x.name, s);
      const dlq = isDlq(x.name);
      if (dlq && !row.dlqBadge) {
        row.dlqBadge = badge('DLQ', 'dlq', 'A dead-letter queue: other queues move failing messages here');
        row.cells.name.querySelector('.qname').append(row.dlqBadge);
      } else if (!dlq && row.dlqBadge) {
        row.dlqBadge.remove();
        row.dlqBadge = null;
      }
      row.tr.classList.toggle('dlq-full', dlq && s.messages > 0);
      const subText = x.dead_letter_queue ? [h('span', { class: 'arrow', text: 'dead letters → ' }), queueLink(x.dead_letter_queue)] : [];
      const subKey = x.dead_letter_queue || '';
      if (row.sub.dataset.key !== subKey) {
        row.sub.dataset.key = subKey;
        row.sub.replaceChildren(...subText);
      }
      setText(row.messages.v, fmtInt(s.messages));
      row.messages.s.replaceChildren(sparkline(pts, ['messages'], now, { colors: [0] }));
      setText(row.cells.visible, fmtInt(s.visible));
      setText(row.inflight.v, fmtInt(s.inflight));
      row.inflight.s.replaceChildren(sparkline(pts, ['inflight'], now, { colors: [1] }));
      setText(row.cells.delayed, fmtInt(s.delayed));
      setText(row.cells.oldest, fmtAge(s.oldest_age_s, s.messages));
      row.cells.oldest.classList.toggle('hot', s.messages > 0 && s.oldest_age_s > 300);
      const sent = lastValue(x.name, 'sent_per_s');
      const recv = lastValue(x.name, 'received_per_s');
      setText(row.rates.v.children[0], fmtCompact(sent));
      setText(row.rates.v.children[2], fmtCompact(recv));
      row.rates.s.replaceChildren(sparkline(pts, ['sent_per_s', 'received_per_s'], now, { colors: [0, 3] }));
      setText(row.cells.bytes, fmtBytes(s.bytes));
    }
  }

  // ------------------------------------------------------------------ one queue
  const CONFIG_ROWS = [
    ['Type', (c) => (c.fifo ? 'FIFO' : 'Standard')],
    ['Visibility timeout', (c) => fmtDuration(c.visibility_timeout_s)],
    ['Retention', (c) => fmtDuration(c.retention_s)],
    ['Delivery delay', (c) => fmtDuration(c.delay_s)],
    ['Receive wait (long poll)', (c) => fmtDuration(c.receive_wait_s)],
    ['Max message size', (c) => fmtBytes(c.max_message_bytes)],
    ['Max depth', (c) => {
      const parts = [];
      if (c.max_depth_messages) parts.push(plural(c.max_depth_messages, 'message'));
      if (c.max_depth_bytes) parts.push(fmtBytes(c.max_depth_bytes));
      return parts.length ? `${parts.join(', ')} (when full: ${c.overflow === 'reject' ? 'reject sends' : 'drop oldest'})` : 'unbounded';
    }],
    ['Dead-letter queue', (c) => (c.redrive ? [queueLink(c.redrive.dead_letter_queue), ` after ${plural(c.redrive.max_receive_count, 'receive')}`] : 'none')],
    ['Content-based dedup', (c) => (c.fifo ? (c.content_dedup ? 'on' : 'off') : null)],
    ['Dedup scope', (c) => (c.fifo ? c.dedup_scope.replace('_', ' ') : null)],
    ['Partitions', (c) => fmtInt(c.partitions)],
  ];


  class QueueView {
    constructor(name) {
      this.name = name;
      this.detail = null;
      this.peekStamp = '';
      this.peekOldest = 0;
      this.peekedAt = 0;
      this.missing = false;
      this.charts = [
        new TimeChart({ id: 'depth', title: 'Messages', integer: true, fmt: fmtCompact, area: ['visible'], series: [
          { key: 'visible', label: 'Visible', color: 0 },
          { key: 'inflight', label: 'In flight', color: 1 },
          { key: 'delayed', label: 'Delayed', color: 6 },
        ] }),
        new TimeChart({ id: 'rates', title: 'Messages per second', fmt: fmtCompact, series: RATE_KEYS.throughput }),
        new TimeChart({ id: 'age', title: 'Age of the oldest message', fmt: (v) => fmtDuration(v), duration: true, area: ['oldest_age_s'], series: [
          { key: 'oldest_age_s', label: 'Oldest', color: 1 },
        ] }),
        new TimeChart({ id: 'trouble', title: 'Redeliveries, dead letters, expiries /s', fmt: fmtCompact, series: RATE_KEYS.trouble }),
      ];
      this.cards = {
        messages: statCard('messages', 'Messages'),
        visible: statCard('visible', 'Visible', 'ready to receive'),
        inflight: statCard('inflight', 'In flight', 'not yet deleted'),
        delayed: statCard('delayed', 'Delayed', 'not yet due'),
        oldest: statCard('oldest', 'Oldest', 'message age'),
        sent: statCard('sent', 'Sent', 'last 5 s'),
        received: statCard('received', 'Received', 'last 5 s'),
        parked: statCard('parked', 'Long polls', 'receives waiting'),
      };
      this.titleBadges = h('span', { class: 'title-badges' });
      this.meta = h('p', { class: 'subtitle' });
      this.purgeBtn = h('button', { type: 'button', class: 'btn danger-outline', id: 'purge-button', onclick: () => this.purge() }, 'Purge…');
      this.sendForm = this.makeSendForm();
      this.peekLimit = h('select', { 'aria-label': 'How many messages to peek', onchange: () => this.peek() },
        [10, 25, 50, 100].map((n) => h('option', { value: n, text: `${n} oldest` })));
      this.peekBody = h('tbody');
      this.peekNote = h('p', { class: 'muted peek-note' });
      this.configBody = h('tbody');
      this.tags = h('div', { class: 'tags' });
      this.partBody = h('tbody');
      this.ids = h('dl', { class: 'ids' });
      this.dlqPanel = h('section', { class: 'panel dlq-panel', hidden: true });
      this.el = h(
        'div',
        { class: 'page queue-page', dataset: { queue: name } },
        h(
          'nav',
          { class: 'crumbs', 'aria-label': 'Breadcrumb' },
          h('a', { href: '#/', text: 'Queues' }),
          h('span', { class: 'sep', text: '/' }),
          h('span', { text: name }),
        ),
        h(
          'div',
          { class: 'page-head' },
          h('div', {}, h('h1', {}, h('span', { class: 'qtitle', text: name }), this.titleBadges), this.meta),
          h(
            'div',
            { class: 'actions' },
            h('button', { type: 'button', class: 'btn primary', onclick: () => this.sendForm.querySelector('textarea').focus() }, 'Send message'),
            this.purgeBtn,
          ),
        ),
        this.dlqPanel,
        h('div', { class: 'stats' }, Object.values(this.cards).map((c) => c.el)),
        h('div', { class: 'charts' }, this.charts.map((c) => c.el)),
        h(
          'div',
          { class: 'columns' },
          h(
            'section',
            { class: 'panel peek-panel' },
            h('header', { class: 'panel-head' },
              h('h2', { text: 'Messages' }),
              h('div', { class: 'panel-tools' }, this.peekLimit, h('button', { type: 'button', class: 'btn small', onclick: () => this.peek() }, 'Refresh'))),
            this.peekNote,
            h('div', { class: 'scroll' }, this.peekTable = h('table', { class: 'peek' },
              h('thead', {}, h('tr', {}, ['Message', 'Sent', 'Receives', 'Group', 'Body'].map((t) => h('th', { scope: 'col', text: t })))),
              this.peekBody)),
          ),
          h('div', { class: 'side' },
            h('section', { class: 'panel send-panel' }, h('header', { class: 'panel-head' }, h('h2', { text: 'Send a message' })), this.sendForm),
          ),
        ),
        h(
          'div',
          { class: 'columns even' },
          h('section', { class: 'panel' }, h('header', { class: 'panel-head' }, h('h2', { text: 'Attributes' })), h('table', { class: 'kv' }, this.configBody), this.tags, this.ids),
          h('section', { class: 'panel' }, h('header', { class: 'panel-head' }, h('h2', { text: 'Partitions' })),
            h('div', { class: 'scroll' }, h('table', { class: 'parts' },
              h('thead', {}, h('tr', {}, ['#', 'Visible', 'In flight', 'Delayed', 'Size', 'Oldest', 'Log', 'Segments'].map((t, i) => h('th', { scope: 'col', class: i ? 'num' : null, text: t })))),
              this.partBody))),
        ),
      );
      document.title = `${name} · Conveyor`;
    }

    destroy() {
      for (const c of this.charts) c.destroy();
    }

    makeSendForm() {
      const attrs = h('div', { class: 'attr-rows' });
      const addAttr = () => {
        const row = h('div', { class: 'attr-row' },
          h('input', { type: 'text', name: 'attr-name', placeholder: 'Name', 'aria-label': 'Attribute name', required: true }),
          h('select', { name: 'attr-type', 'aria-label': 'Attribute type' }, ['String', 'Number', 'Binary'].map((t) => h('option', { text: t }))),
          h('input', { type: 'text', name: 'attr-value', placeholder: 'Value (Binary: base64)', 'aria-label': 'Attribute value', required: true }),
          h('button', { type: 'button', class: 'btn icon', 'aria-label': 'Remove attribute', onclick: () => row.remove() }, '×'));
        attrs.append(row);
        row.querySelector('input').focus();
      };
      const result = h('p', { class: 'form-result', role: 'status' });
      const field = (id, label, props, cls) =>
        h('div', { class: `field ${cls || ''}` }, h('label', { for: id, text: label }), h('input', { id, ...props }));
      const form = h(
        'form',
        { class: 'send-form', id: 'send-form', novalidate: true },
        h('label', { for: 'send-body', text: 'Body' }),
        h('textarea', { id: 'send-body', name: 'body', rows: 5, required: true, placeholder: '{"order": 1}', spellcheck: 'false' }),
        h('div', { class: 'field-row' },
          field('send-delay', 'Delay (s)', { name: 'delay', type: 'number', min: 0, max: 900, placeholder: 'default' }),
          field('send-group', 'Message group', { name: 'group', type: 'text', maxlength: 128 }, 'fifo-only'),
          field('send-dedup', 'Dedup id', { name: 'dedup', type: 'text', maxlength: 128, placeholder: 'optional' }, 'fifo-only')),
        h('div', { class: 'attr-head' }, h('span', { text: 'Attributes' }), h('button', { type: 'button', class: 'btn small ghost', onclick: addAttr }, '+ Add')),
        attrs,
        h('div', { class: 'form-actions' }, result, h('button', { type: 'submit', class: 'btn primary', id: 'send-submit' }, 'Send')),
      );
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        this.send(form, result);
      });
      form.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
          ev.preventDefault();
          this.send(form, result);
        }
      });
      return form;
    }

    async send(form, result) {
      const body = form.elements.body.value;
      if (!body) {
        result.className = 'form-result error';
        result.textContent = 'The body cannot be empty.';
        form.elements.body.focus();
        return;
      }
      const req = { body };
      const delay = form.elements.delay.value.trim();
      if (delay !== '') req.delay_s = Number(delay);
      if (this.detail && this.detail.config.fifo) {
        const group = form.elements.group.value.trim();
        const dedup = form.elements.dedup.value.trim();
        if (group) req.group_id = group;
        if (dedup) req.dedup_id = dedup;
      }
      const rows = [...form.querySelectorAll('.attr-row')];
      if (rows.length) {
        req.attributes = {};
        for (const r of rows) {
          const name = r.querySelector('[name=attr-name]').value.trim();
          const type = r.querySelector('[name=attr-type]').value;
          const value = r.querySelector('[name=attr-value]').value;
          if (!name) continue;
          req.attributes[name] = type === 'Binary' ? { data_type: type, binary_value: value } : { data_type: type, string_value: value };
        }
      }
      const button = form.querySelector('[type=submit]');
      button.disabled = true;
      try {
        const out = await api('POST', `queues/${q(this.name)}/messages`, req);
        result.className = 'form-result ok';
        result.textContent = out.duplicate
          ? `Duplicate of ${shortId(out.message_id)} (inside the dedup window): not sent again.`
          : `Sent ${shortId(out.message_id)} at ${fmtClock(Date.now(), true)}`;
        toast('ok', out.duplicate ? 'Duplicate: not sent again' : 'Message sent', out.message_id);
        await this.afterAction();
      } catch (e) {
        result.className = 'form-result error';
        result.textContent = `${e.code}: ${e.message}`;
        toast('error', 'Send failed', e.message);
      } finally {
        button.disabled = false;
      }
    }

    async purge() {
      const n = this.detail ? this.detail.stats.messages : 0;
      const ok = await confirmDialog({
        title: `Purge ${this.name}?`,
        body: [
          h('p', {}, 'Delete ', h('strong', { text: plural(n, 'message') }), ' from ', h('strong', { text: this.name }), ', in flight and delayed ones included. This cannot be undone.'),
          h('p', { class: 'muted', text: 'A queue can be purged once every 60 seconds.' }),
        ],
        ok: 'Purge queue',
        danger: true,
      });
      if (!ok) return;
      try {
        await api('POST', `queues/${q(this.name)}/purge`);
        toast('ok', `Purged ${this.name}`);
        await this.afterAction();
      } catch (e) {
        toast('error', 'Purge refused', e.message);
      }
    }

    async redrive() {
      const sources = this.detail ? this.detail.dead_letter_sources : [];
      const others = (store.queues || []).map((x) => x.name).filter((x) => x !== this.name);
      const dest = h('select', { id: 'redrive-destination' },
        h('option', { value: '', text: sources.length ? `Where each came from (${sources.join(', ')})` : 'Where each came from' }),
        others.map((x) => h('option', { value: x, text: x })));
      const max = h('input', { id: 'redrive-max', type: 'number', min: 1, placeholder: 'all' });
      const visible = this.detail ? this.detail.stats.visible : 0;
      const ok = await confirmDialog({
        title: `Redrive ${this.name}`,
        body: [
          h('p', {}, 'Move the ', h('strong', { text: plural(visible, 'visible message') }), ` of ${this.name} back to be processed again. Their receive counts start again at 0.`),
          h('label', { for: 'redrive-destination', text: 'Destination' }), dest,
          h('label', { for: 'redrive-max', text: 'At most' }), max,
        ],
        ok: 'Redrive messages',
      });
      if (!ok) return;
      const req = {};
      if (dest.value) req.destination = dest.value;
      if (max.value.trim() !== '') req.max_messages = Number(max.value);
      try {
        const out = await api('POST', `queues/${q(this.name)}/redrive`, req);
        toast('ok', `Moved ${plural(out.moved, 'message')}`, out.destination ? `to ${out.destination}` : 'back to where each came from');
        await this.afterAction();
      } catch (e) {
        toast('error', 'Redrive failed', e.message);
      }
    }

    async afterAction() {
      await pollNow();
      await this.peek();
    }

    async peek() {
      try {
        this.peekedAt = Date.now();
        const data = await api('GET', `queues/${q(this.name)}/messages?limit=${this.peekLimit.value}`);
        this.renderPeek(data.messages);
      } catch (e) {
        if (e.status !== 404) toast('error', 'Peek failed', e.message);
      }
    }

    async refresh() {
      let detail;
      try {
        [detail] = await Promise.all([api('GET', `queues/${q(this.name)}`), loadQueueHistory(this.name)]);
      } catch (e) {
        if (e.status === 404) {
          this.showMissing();
          return;
        }
        throw e;
      }
      if (!store.queues) {
        store.queues = (await api('GET', 'queues')).queues; // for DLQ badges, redrive targets
      }
      this.missing = false;
      this.detail = detail;
      this.render();
      // peek again when the oldest messages may have changed: the counts moved, the
      // oldest one left (its age went down), or the list is getting old
      const st = detail.stats;
      const stamp = `${st.messages}:${st.visible}:${st.inflight}:${st.delayed}:${st.bytes}`;
      const oldestLeft = st.oldest_age_s + 1 < this.peekOldest;
      if (stamp !== this.peekStamp || oldestLeft || Date.now() - this.peekedAt > PEEK_EVERY_MS) {
        this.peekStamp = stamp;
        await this.peek();
      }
      this.peekOldest = st.oldest_age_s;
    }

    showMissing() {
      if (this.missing) return;
      this.missing = true;
      this.el.replaceChildren(
        h('nav', { class: 'crumbs' }, h('a', { href: '#/', text: 'Queues' })),
        h('div', { class: 'panel empty' }, h('strong', { text: `No queue named ${this.name}.` }), ' It may have been deleted. ', h('a', { href: '#/', text: 'All queues' })),
      );
    }

    render() {
      const d = this.detail;
      const s = d.stats;
      const c = this.cards;
      const now = serverNow();
      setText(c.messages.value, fmtInt(s.messages));
      setText(c.messages.sub, fmtBytes(s.bytes));
      setText(c.visible.value, fmtInt(s.visible));
      setText(c.inflight.value, fmtInt(s.inflight));
      setText(c.delayed.value, fmtInt(s.delayed));
      setText(c.oldest.value, fmtAge(s.oldest_age_s, s.messages));
      c.oldest.el.classList.toggle('warn', s.messages > 0 && s.oldest_age_s > 300);
      setText(c.sent.value, fmtRate(lastValue(this.name, 'sent_per_s')));
      setText(c.received.value, fmtRate(lastValue(this.name, 'received_per_s')));
      setText(c.parked.value, fmtInt(s.parked_receives));

      const dlq = d.dead_letter_sources.length > 0;
      const badges = [badge(d.config.fifo ? 'FIFO' : 'Standard', d.config.fifo ? 'fifo' : '')];
      if (dlq) badges.push(badge('Dead-letter queue', 'dlq'));
      const badgeKey = badges.map((b) => b.textContent).join();
      if (this.titleBadges.dataset.key !== badgeKey) {
        this.titleBadges.dataset.key = badgeKey;
        this.titleBadges.replaceChildren(...badges);
      }
      const metaKey = JSON.stringify([d.config.redrive, d.dead_letter_sources, d.modified_ms]);
      if (this.meta.dataset.key !== metaKey) {
        this.meta.dataset.key = metaKey;
        const parts = [`${plural(d.config.partitions, 'partition')} · created ${fmtDateTime(d.created_ms)}`];
        const r = d.config.redrive;
        if (r) parts.push(' · dead letters go to ', queueLink(r.dead_letter_queue), ` after ${plural(r.max_receive_count, 'receive')}`);
        this.meta.replaceChildren(...parts);
        this.renderConfig();
      }
      this.dlqPanel.hidden = !dlq;
      if (dlq) {
        const key = `${d.dead_letter_sources.join()}:${s.visible}`;
        if (this.dlqPanel.dataset.key !== key) {
          this.dlqPanel.dataset.key = key;
          this.dlqPanel.replaceChildren(
            h('div', { class: 'dlq-text' },
              h('strong', { text: 'Dead-letter queue' }),
              h('span', {}, ' for ', d.dead_letter_sources.map((n, i) => [i ? ', ' : '', queueLink(n)]), '. '),
              h('span', { text: s.visible ? `${plural(s.visible, 'message')} can be redriven once their cause is fixed.` : 'Nothing to redrive.' })),
            h('button', { type: 'button', class: 'btn', id: 'redrive-button', disabled: s.visible === 0, onclick: () => this.redrive() }, 'Redrive…'),
          );
        }
      }
      this.sendForm.classList.toggle('fifo', d.config.fifo);

      const pts = withLive(this.name, s);
      for (const chart of this.charts) chart.update(pts, now);

      this.partBody.replaceChildren(
        ...d.partitions.map((p) => h('tr', {},
          h('td', { text: p.index }),
          h('td', { class: 'num', text: fmtInt(p.visible) }),
          h('td', { class: 'num', text: fmtInt(p.inflight) }),
          h('td', { class: 'num', text: fmtInt(p.delayed) }),
          h('td', { class: 'num', text: fmtBytes(p.visible_bytes + p.inflight_bytes + p.delayed_bytes) }),
          h('td', { class: 'num', text: fmtAge(p.oldest_age_s, p.visible + p.inflight + p.delayed) }),
          h('td', { class: 'num', text: fmtBytes(p.log_bytes) }),
          h('td', { class: 'num', text: fmtInt(p.log_segments) }))),
      );
    }

    renderConfig() {
      const d = this.detail;
      this.configBody.replaceChildren(
        ...CONFIG_ROWS.map(([label, fn]) => {
          const v = fn(d.config);
          return v === null ? null : h('tr', {}, h('th', { scope: 'row', text: label }), h('td', {}, v));
        }).filter(Boolean),
      );
      const tags = Object.entries(d.tags);
      this.tags.replaceChildren(
        h('h3', { text: 'Tags' }),
        ...(tags.length
          ? tags.map(([k, v]) => h('span', { class: 'tag' }, h('b', { text: k }), h('span', { text: v })))
          : [h('span', { class: 'muted', text: 'none' })]),
      );
      this.ids.replaceChildren(
        h('dt', { text: 'Created' }), h('dd', { text: fmtDateTime(d.created_ms) }),
        h('dt', { text: 'Modified' }), h('dd', { text: fmtDateTime(d.modified_ms) }),
        h('dt', { text: 'UID' }), h('dd', {}, h('code', { text: d.uid })),
      );
    }

    renderPeek(messages) {
      const fifo = this.detail && this.detail.config.fifo;
      const total = this.detail ? this.detail.stats.messages : messages.length;
      setText(this.peekNote, messages.length
        ? `The ${plural(messages.length, 'oldest message')} of ${fmtInt(total)}, peeked: receive counts and visibility do not change.`
        : 'The queue is empty.');
      const open = new Set([...this.peekBody.querySelectorAll('tr.open')].map((tr) => tr.dataset.id));
      const rows = [];
      for (const m of messages) {
        const preview = m.body_encoding === 'base64' ? `(binary, ${m.body.length} base64 chars)` : m.body.slice(0, 160);
        const tr = h('tr', { class: 'msg', dataset: { id: m.message_id }, tabindex: 0 },
          h('td', {}, h('code', { title: m.message_id, text: shortId(m.message_id) })),
          h('td', { title: fmtDateTime(m.sent_ms), text: fmtAgo(m.sent_ms) }),
          h('td', { class: 'num', text: fmtInt(m.receive_count) }),
          h('td', { text: m.group_id || (fifo ? '—' : '') }),
          h('td', { class: 'body-preview' }, h('span', { text: preview }),
            Object.keys(m.attributes).length ? badge(plural(Object.keys(m.attributes).length, 'attribute'), 'soft') : null));
        const detail = h('tr', { class: 'msg-detail', hidden: !open.has(m.message_id) },
          h('td', { colspan: 5 }, this.messageDetail(m)));
        if (open.has(m.message_id)) tr.classList.add('open');
        const toggle = () => {
          detail.hidden = !detail.hidden;
          tr.classList.toggle('open', !detail.hidden);
        };
        tr.addEventListener('click', toggle);
        tr.addEventListener('keydown', (ev) => {
          if (ev.key === 'Enter' || ev.key === ' ') {
            ev.preventDefault();
            toggle();
          }
        });
        rows.push(tr, detail);
      }
      this.peekBody.replaceChildren(...rows);
      this.peekTable.hidden = rows.length === 0;
    }

    messageDetail(m) {
      let body = m.body;
      if (m.body_encoding === 'text') {
        try {
          const parsed = JSON.parse(body);
          if (parsed !== null && typeof parsed === 'object') body = JSON.stringify(parsed, null, 2);
        } catch (e) {
          // not JSON: shown as it is
        }
      }
      const kv = [
        ['Message id', m.message_id],
        ['Sent', fmtDateTime(m.sent_ms)],
        ['First received', m.first_receive_ms ? fmtDateTime(m.first_receive_ms) : 'never'],
        ['Sequence number', m.sequence_number],
        ['Group', m.group_id],
        ['Dedup id', m.dedup_id],
        ...Object.entries(m.system).map(([k, v]) => [k, v]),
      ].filter(([, v]) => v !== null && v !== undefined);
      const attrs = Object.entries(m.attributes);
      return h('div', { class: 'msg-box' },
        h('pre', { class: 'msg-body', text: body + (m.body_encoding === 'base64' ? '\n(base64: the body is not UTF-8)' : '') }),
        h('div', { class: 'msg-meta' },
          h('dl', {}, kv.map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })])),
          attrs.length ? h('table', { class: 'kv small' }, h('tbody', {}, attrs.map(([k, a]) => h('tr', {},
            h('th', { text: k }), h('td', { class: 'muted', text: a.data_type }), h('td', {}, h('code', { text: a.string_value ?? a.binary_value ?? '' })))))) : null));
    }
  }

  // ------------------------------------------------------------------ the cluster
  const ROLE_BADGES = {
    leader: ['leader', 'This node leads the partition: it takes the writes'],
    follower: ['ok', 'In sync: replicating from the leader'],
    'catching-up': ['warn', 'Replicating, not (yet) in sync'],
    fenced: ['danger', 'May not act: no configuration, lease lost or stale'],
  };
  const LAG_HOT = 1000; // records written here and not yet committed

  class ClusterView {
    constructor() {
      this.rows = new Map(); // partition name -> {tr, key}
      this.leaders = new Map(); // partition name -> leader last shown
      this.missing = false;
      this.filter = h('input', {
        type: 'search',
        class: 'filter',
        placeholder: 'Filter partitions  ( / )',
        'aria-label': 'Filter partitions by queue, node or role',
        oninput: () => this.render(),
      });
      this.cards = {
        nodes: statCard('nodes', 'Nodes', 'live'),
        partitions: statCard('partitions', 'Partitions'),
        under: statCard('under', 'Under-replicated', 'fewer in sync than replicas'),
        leaderless: statCard('leaderless', 'Without leader', 'no live leader'),
        here: statCard('here', 'Led here'),
        controller: statCard('controller', 'Controller', 'elects leaders, moves replicas'),
      };
      this.sub = h('p', { class: 'subtitle', id: 'cluster-sub', text: 'Loading…' });
      this.nodeBody = h('tbody');
      this.partBody = h('tbody');
      this.empty = h('div', { class: 'empty', hidden: true });
      const th = (t, i, numFrom) => h('th', { scope: 'col', class: i >= numFrom ? 'num' : null, text: t });
      this.body = h(
        'div',
        { class: 'cluster-body' },
        h('div', { class: 'stats' }, Object.values(this.cards).map((c) => c.el)),
        h('section', { class: 'panel table-panel' },
          h('header', { class: 'panel-head' }, h('h2', { text: 'Nodes' })),
          h('div', { class: 'scroll' }, h('table', { class: 'cluster-nodes' },
            h('thead', {}, h('tr', {}, ['Node', 'HTTP', 'Native', 'Replicas', 'Leads', 'Lease'].map((t, i) => th(t, i, 3)))),
            this.nodeBody))),
        h('section', { class: 'panel table-panel' },
          h('header', { class: 'panel-head' }, h('h2', { text: 'Partitions' }),
            h('div', { class: 'panel-tools legend-chips' },
              h('span', { class: 'replica leader', text: 'leader' }),
              h('span', { class: 'replica insync', text: 'in sync' }),
              h('span', { class: 'replica out', text: 'out of sync' }),
              h('span', { class: 'replica down', text: 'down' }))),
          h('div', { class: 'scroll' }, h('table', { class: 'cluster-parts' },
            h('thead', {}, h('tr', {},
              ['Queue', 'Partition', 'Leader', 'Epoch', 'Replicas', 'In sync', 'Here', 'Log end', 'Commit', 'Lag'].map((t) => h('th', {
                scope: 'col',
                dataset: { col: t.toLowerCase().replace(' ', '_') },
                class: ['Partition', 'Epoch', 'Log end', 'Commit', 'Lag'].includes(t) ? 'num' : null,
                title: t === 'Here' ? "This node's replica: its role, how far its log and commit point are" : null,
                text: t,
              })))),
            this.partBody)),
          this.empty),
      );
      this.single = h('div', { class: 'panel empty not-clustered', hidden: true },
        h('strong', { text: 'This node is not in cluster mode.' }),
        h('span', {}, ' It runs alone. Start nodes with ', h('code', { text: '--cluster etcd://HOST:PORT' }), ' to replicate every queue over several of them. '),
        h('a', { href: '#/', text: 'All queues' }));
      this.el = h(
        'div',
        { class: 'page cluster-page' },
        h('div', { class: 'page-head' }, h('div', {}, h('h1', { text: 'Cluster' }), this.sub), this.filter),
        this.single,
        this.body,
      );
      this.onKey = (ev) => {
        if (ev.key === '/' && document.activeElement === document.body) {
          ev.preventDefault();
          this.filter.focus();
        }
      };
      document.addEventListener('keydown', this.onKey);
      document.title = 'Cluster · Conveyor';
    }

    destroy() {
      document.removeEventListener('keydown', this.onKey);
    }

    async refresh() {
      await loadCluster();
      this.render();
    }

    render() {
      const c = store.cluster;
      this.single.hidden = store.clustered !== false;
      this.body.hidden = !c;
      this.filter.hidden = !c;
      if (!c) {
        if (store.clustered === false) setText(this.sub, 'Not in cluster mode');
        return;
      }
      const live = new Set(c.nodes.map((n) => n.id));
      const held = new Map(); // node -> replicas, for nodes that are down
      const leads = new Map();
      let under = 0;
      let leaderless = 0;
      let here = 0;
      let hosted = 0;
      for (const p of c.partitions) {
        for (const r of p.replicas) held.set(r, (held.get(r) || 0) + 1);
        if (p.leader) leads.set(p.leader, (leads.get(p.leader) || 0) + 1);
        if (p.isr.length < p.replicas.length) under += 1;
        if (!p.leader || !live.has(p.leader)) leaderless += 1;
        if (p.local) {
          hosted += 1;
          if (p.local.role === 'leader') here += 1;
        }
      }
      const down = [...held.keys()].filter((n) => !live.has(n)).sort();
      const queues = new Set(c.partitions.map((p) => p.queue)).size;
      const k = this.cards;
      setText(k.nodes.value, fmtInt(c.nodes.length));
      setText(k.nodes.sub, down.length ? `${fmtInt(down.length)} down: ${down.join(', ')}` : 'all live');
      k.nodes.el.classList.toggle('warn', down.length > 0);
      setText(k.partitions.value, fmtInt(c.partitions.length));
      setText(k.partitions.sub, `of ${plural(queues, 'queue')}`);
      setText(k.under.value, fmtInt(under));
      k.under.el.classList.toggle('warn', under > 0);
      setText(k.leaderless.value, fmtInt(leaderless));
      k.leaderless.el.classList.toggle('warn', leaderless > 0);
      setText(k.here.value, fmtInt(here));
      setText(k.here.sub, `of ${plural(hosted, 'replica')} on ${c.node}`);
      setText(k.controller.value, c.controller || '—');
      k.controller.el.classList.toggle('warn', !c.controller);
      setText(this.sub, `${plural(c.nodes.length, 'live node')}, ${plural(c.partitions.length, 'partition')} · as node ${c.node} sees them · updated live`);

      // nodes: the live ones, then the ones that hold replicas but have no lease
      const nodeRows = c.nodes.map((n) => this.nodeRow(n, c, n.replicas, leads.get(n.id) || 0, true));
      for (const id of down) nodeRows.push(this.nodeRow({ id, http: null, native: null, lease_hex: null, replicas: held.get(id) }, c, held.get(id), leads.get(id) || 0, false));
      const nodeKey = JSON.stringify([c.nodes, down, [...held], [...leads], c.controller, c.node]);
      if (this.nodeBody.dataset.key !== nodeKey) {
        this.nodeBody.dataset.key = nodeKey;
        this.nodeBody.replaceChildren(...nodeRows);
      }

      const needle = this.filter.value.trim().toLowerCase();
      const shown = c.partitions.filter((p) => !needle || [p.queue, p.leader || '', p.local ? p.local.role : '', ...p.replicas].some((x) => x.toLowerCase().includes(needle)));
      const seen = new Set();
      for (const p of shown) {
        seen.add(p.name);
        const key = JSON.stringify([p, [...live].sort()]);
        let row = this.rows.get(p.name);
        if (!row || row.key !== key) {
          const tr = this.partRow(p, live);
          const before = this.leaders.get(p.name);
          if (before !== undefined && before !== p.leader) tr.querySelector('[data-field="leader"] > *').classList.add('changed');
          if (row) row.tr.replaceWith(tr);
          row = { tr, key };
          this.rows.set(p.name, row);
        }
        this.leaders.set(p.name, p.leader);
        this.partBody.append(row.tr); // in the API's order: by queue, then partition
      }
      for (const [name, row] of this.rows) {
        if (!seen.has(name)) {
          row.tr.remove();
          this.rows.delete(name);
          if (!c.partitions.some((p) => p.name === name)) this.leaders.delete(name);
        }
      }
      this.empty.hidden = shown.length > 0;
      if (!c.partitions.length) {
        this.empty.replaceChildren(
          h('strong', { text: 'No queues yet.' }),
          h('span', {}, ' Create one with ', h('code', { text: 'conveyor queue create orders' }), ': its partitions are placed on the live nodes.'),
        );
      } else if (!shown.length) {
        this.empty.replaceChildren(h('span', { text: `No partition matches “${this.filter.value}”.` }));
      }
    }

    nodeRow(n, c, replicas, leads, isLive) {
      const badges = [];
      if (n.id === c.node) badges.push(badge('this node', 'self', 'The node this console talks to'));
      if (n.id === c.controller) badges.push(badge('controller', 'controller', 'Runs leader elections and moves replicas'));
      if (!isLive) badges.push(badge('down', 'down', 'Holds replicas but has no lease: not running, or cut off from the coordinator'));
      const addr = (a) => (a ? h('code', { text: a }) : h('span', { class: 'muted', text: '—' }));
      const httpCell = n.http
        ? h('a', { href: `http://${n.http}/console/#/cluster`, title: "Open this node's console", target: '_blank', rel: 'noopener' }, h('code', { text: n.http }))
        : addr(null);
      return h('tr', { class: isLive ? null : 'node-down', dataset: { node: n.id } },
        h('td', { dataset: { field: 'id' } }, h('div', { class: 'qname' }, h('span', { class: 'node-name', text: n.id }), badges)),
        h('td', { dataset: { field: 'http' } }, httpCell),
        h('td', { dataset: { field: 'native' } }, addr(n.native)),
        h('td', { class: 'num', dataset: { field: 'replicas' }, text: fmtInt(replicas) }),
        h('td', { class: 'num', dataset: { field: 'leads' }, text: fmtInt(leads) }),
        h('td', { class: 'num', dataset: { field: 'lease' } }, n.lease_hex ? h('code', { title: 'etcdctl lease timetolive <id>', text: n.lease_hex }) : h('span', { class: 'muted', text: '—' })));
    }

    partRow(p, live) {
      const isr = new Set(p.isr);
      const chip = (r, showLeader) => {
        const cls = ['replica'];
        let title = 'in sync';
        if (!live.has(r)) {
          cls.push('down');
          title = 'down: no lease';
        } else if (!isr.has(r)) {
          cls.push('out');
          title = 'out of sync: not in the ISR, cannot be elected';
        } else cls.push('insync');
        if (showLeader && r === p.leader) {
          cls.push('leader');
          title = `leader, ${title}`;
        }
        return h('span', { class: cls.join(' '), title, dataset: { replica: r, insync: String(isr.has(r)) }, text: r });
      };
      const local = p.local;
      const lag = local ? local.log_end - local.commit : null;
      const role = local ? ROLE_BADGES[local.role] || ['', ''] : null;
      const out = p.replicas.filter((r) => !isr.has(r));
      const leaderOk = p.leader && live.has(p.leader);
      return h('tr', { class: out.length || !leaderOk ? 'under' : null, dataset: { partition: `${p.queue}/${p.partition}`, name: p.name } },
        h('td', { dataset: { field: 'queue' } }, h('div', { class: 'qname' }, local ? queueLink(p.queue) : h('span', { text: p.queue }))),
        h('td', { class: 'num', title: p.name, dataset: { field: 'partition' }, text: p.partition }),
        h('td', { dataset: { field: 'leader' } }, p.leader
          ? h('span', { class: `node-name${leaderOk ? '' : ' gone'}`, title: leaderOk ? null : 'the leader is down: a new one is elected from the ISR', text: p.leader })
          : badge('none', 'down', 'No leader: writes wait for an election')),
        h('td', { class: 'num', dataset: { field: 'epoch' }, text: fmtInt(p.epoch) }),
        h('td', { dataset: { field: 'replicas' } }, h('div', { class: 'chips' }, p.replicas.map((r) => chip(r, true)))),
        h('td', { dataset: { field: 'isr' } }, h('div', { class: 'chips' },
          h('span', { class: `isr-count${out.length ? ' short' : ''}`, text: `${p.isr.length}/${p.replicas.length}` }),
          p.isr.map((r) => chip(r, false)),
          out.map((r) => chip(r, false)))),
        h('td', { dataset: { field: 'role' } }, local ? badge(local.role, `role ${role[0]}`, role[1]) : h('span', { class: 'muted', title: 'No replica on this node', text: '—' })),
        h('td', { class: 'num', dataset: { field: 'log_end' }, title: local ? `durable to ${fmtInt(local.durable_end)}` : null, text: local ? fmtInt(local.log_end) : '—' }),
        h('td', { class: 'num', dataset: { field: 'commit' }, text: local ? fmtInt(local.commit) : '—' }),
        h('td', { class: `num${lag > LAG_HOT ? ' hot' : ''}`, dataset: { field: 'lag' }, title: 'log end − commit: records here not yet committed', text: local ? fmtInt(lag) : '—' }));
    }
  }

  // ------------------------------------------------------------------ router and poller
  let view = null;
  let timer = null;
  let running = null;
  let again = false;
  let polls = 0;

  function route() {
    if (/^#\/cluster\/?$/.test(location.hash)) return { page: 'cluster' };
    const m = location.hash.match(/^#\/queues\/([^/?#]+)/);
    return m ? { page: 'queue', name: decodeURIComponent(m[1]) } : { page: 'overview' };
  }

  function navigate() {
    const r = route();
    if (view) view.destroy();
    if (r.page === 'cluster') view = new ClusterView();
    else view = r.page === 'queue' ? new QueueView(r.name) : new OverviewView();
    const app = document.getElementById('app');
    app.replaceChildren(view.el);
    document.getElementById('nav-queues').classList.toggle('active', r.page === 'overview');
    document.getElementById('nav-cluster').classList.toggle('active', r.page === 'cluster');
    window.scrollTo(0, 0);
    pollNow();
  }

  async function pollOnce() {
    const current = view;
    try {
      if (polls % NODE_EVERY === 0 || !store.node) await loadNode();
      polls += 1;
      // is the node in a cluster? asked once (and again after it restarted); the
      // cluster page asks on every round anyway
      if (store.clustered === undefined && !(current instanceof ClusterView)) await loadCluster();
      await current.refresh();
      if (current === view) setStatus('live');
    } catch (e) {
      if (current === view) setStatus('error', e.message);
    }
  }

  function pollNow() {
    if (running) {
      again = true;
      return running;
    }
    clearTimeout(timer);
    running = (async () => {
      do {
        again = false;
        await pollOnce();
      } while (again);
      running = null;
      schedule();
    })();
    return running;
  }

  function schedule() {
    clearTimeout(timer);
    if (document.hidden) {
      setStatus('paused');
      return;
    }
    timer = setTimeout(pollNow, POLL_MS);
  }

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) pollNow();
    else schedule();
  });
  window.addEventListener('hashchange', navigate);
  navigate();
})();
