// Lockstep dashboard: lag against SLOs, the job queue, revocation receipts, drift and check latency,
// read from the public HTTP API every POLL_MS with the key the user typed (kept in sessionStorage).

import { ApiProblem, createClient } from './lib/api.js';
import { describePoint, drawLagChart, TIERS } from './lib/chart.js';
import { fmtAgo, fmtMs, fmtTime, h, show } from './lib/dom.js';
import { quantile, readHistogram } from './lib/prometheus.js';

const POLL_MS = 1500;
const STORE = { key: 'lockstep.dashboard.key', org: 'lockstep.dashboard.org' };
const $ = (sel) => document.querySelector(sel);
const panel = (id) => $(`[data-testid="${id}"]`);

let session = null; // {api, org, timer, stopped, metricsDenied, receipt, receiptsShown}

// ---------------------------------------------------------------------------------------------
// Session: connect, poll, sign out.

/**
 * Signs in with `key` and opens organization `wanted` (empty: the first the key may see). The key's
 * organizations come from GET /v1/organizations; an organization-scoped key asked for another
 * organization gets a message naming its own (it never sees the other), not a board of errors.
 */
async function connect(key, wanted) {
  stop();
  const attempt = (session = { api: createClient(key), key, org: null, timer: undefined, stopped: false, metricsDenied: false, receipt: null, receiptsShown: '' });
  sessionStorage.setItem(STORE.key, key);
  setStatus('Connecting…');
  let list;
  try {
    list = await attempt.api('/v1/organizations');
  } catch (e) {
    if (attempt.stopped) return;
    if (e instanceof ApiProblem && e.status === 401) return signOut(describe(e));
    return showNotice(`Could not list organizations: ${describe(e)}`);
  }
  if (attempt.stopped) return;
  const ids = list.organizations.map((o) => o.id);
  const org = wanted || ids[0];
  $('#login').hidden = true;
  $('#signout').hidden = false;
  fillPicker(ids, ids.includes(org) ? org : null);
  if (!org) return showNotice('This server has no organization yet: create one with PUT /v1/organizations/{id} (admin key).');
  if (!ids.includes(org)) {
    sessionStorage.removeItem(STORE.org);
    if (list.key.org !== null) {
      setStatus('FORBIDDEN: this API key belongs to another organization', true);
      return showNotice(`This key belongs to organization “${list.key.org}”, not “${org}”. A key of one organization never sees another's data.`,
        h('button', { type: 'button', 'data-testid': 'open-own-org', onclick: () => void connect(key, list.key.org) }, `Open ${list.key.org}`));
    }
    setStatus(`NOT_FOUND: no organization ${org}`, true);
    return showNotice(`There is no organization “${org}” on this server. Pick one above.`);
  }
  sessionStorage.setItem(STORE.org, org);
  attempt.org = org;
  $('#org').value = org;
  hideNotice();
  resetBoard();
  $('#board').hidden = false;
  $('[data-testid="current-org"]').textContent = org;
  void runDrift();
  void poll(attempt);
}

/** The header's organization picker: every organization the key may see (one, for a scoped key). */
function fillPicker(ids, selected) {
  const picker = $('#org-picker');
  picker.replaceChildren(...(selected ? [] : [h('option', { value: '' }, 'organization…')]), ...ids.map((id) => h('option', { value: id }, id)));
  picker.value = selected ?? '';
  // One organization (a scoped key): the header's name says it; the picker is for choosing.
  picker.hidden = ids.length < 2 && selected !== null;
}

function showNotice(text, ...extra) {
  $('#board').hidden = true;
  $('#login').hidden = true;
  $('#signout').hidden = false;
  $('[data-testid="current-org"]').textContent = '';
  const box = panel('org-notice');
  show(box, h('p', {}, text), extra);
  box.hidden = false;
}

const hideNotice = () => void (panel('org-notice').hidden = true);

/** Back to placeholders, so that nothing of the previous organization stays on screen. */
function resetBoard() {
  for (const box of document.querySelectorAll('#board .chart')) {
    box.uplot?.destroy();
    box.uplot = undefined;
    box.replaceChildren();
  }
  for (const box of document.querySelectorAll('#board .panel > .body, #board .points .table, [data-testid="slo-report"]')) show(box, h('p', { class: 'empty' }, 'Loading…'));
  panel('receipt').hidden = true;
  panel('worker-banner').hidden = true;
}

function stop() {
  if (!session) return;
  session.stopped = true;
  clearTimeout(session.timer);
  session = null;
}

function signOut(message) {
  stop();
  sessionStorage.removeItem(STORE.key);
  $('#board').hidden = true;
  $('#signout').hidden = true;
  $('#org-picker').hidden = true;
  hideNotice();
  panel('worker-banner').hidden = true;
  $('#login').hidden = false;
  $('[data-testid="current-org"]').textContent = '';
  setStatus(message ?? 'Signed out.', Boolean(message));
}

const orgPath = (rest = '') => `/v1/organizations/${encodeURIComponent(session.org)}${rest}`;

/** One round of every panel; the next starts POLL_MS after this one ends (never overlapping). */
async function poll(s) {
  const results = await Promise.allSettled([refreshChanges(s), refreshJobs(s), refreshRevocations(s), refreshLatency(s), refreshTargets(s)]);
  if (s.stopped) return;
  const problems = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
  if (problems.some((p) => p instanceof ApiProblem && p.status === 401)) {
    signOut(describe(problems.find((p) => p.status === 401)));
    return;
  }
  if (problems.length) setStatus(problems.map(describe).join(' · '), true);
  else setStatus(`Live · updated ${fmtTime(new Date().toISOString()).slice(0, 8)}`);
  s.timer = setTimeout(() => void poll(s), POLL_MS);
}

function describe(e) {
  if (e instanceof ApiProblem) return `${e.code}: ${e.detail}${e.requestId ? ` (request ${e.requestId})` : ''}`;
  console.error(e);
  return `dashboard error: ${e?.message ?? e}`;
}

function setStatus(text, isError = false) {
  const el = panel('status');
  el.textContent = text;
  el.classList.toggle('error', isError);
}

/** A panel's placeholder when its request failed; the status line carries the detail. */
function failed(container, e, what) {
  const missing = e instanceof ApiProblem && e.code === 'ROUTE_NOT_FOUND';
  show(container, h('p', { class: 'empty error' }, missing ? `This server has no ${what} endpoint yet.` : `Could not load ${what}: ${describe(e)}`));
}

// ---------------------------------------------------------------------------------------------
// Lag vs SLO: the last 200 changes and the SLO report.

async function refreshChanges(s) {
  const [changes, slo] = await Promise.allSettled([
    s.api(orgPath('/changes?limit=200')),
    s.api(orgPath('/slo?window=3600')),
  ]);
  if (s.stopped) return;
  const now = Date.now();
  const items = changes.status === 'fulfilled' ? changes.value.changes : [];
  const rows = slo.status === 'fulfilled' ? slo.value.rows : [];
  for (const direction of ['grant', 'revoke']) {
    const fig = panel(`lag-chart-${direction}`);
    const box = fig.querySelector('.chart');
    if (changes.status === 'rejected') {
      box.uplot?.destroy();
      box.uplot = undefined;
      failed(box, changes.reason, 'changes');
      continue;
    }
    const mine = items.filter((c) => c.direction === direction || c.direction === 'both');
    const points = mine.map((c) => {
      const t = Date.parse(c.decidedAt);
      const pending = c.status === 'pending' || c.lagMs === null;
      return {
        revision: c.revision, kind: c.kind, tier: c.tier, t, pending,
        lagMs: pending ? Math.max(0, now - t) : c.lagMs,
        sloMs: c.sloMs, sloMet: c.sloMet,
      };
    });
    drawLagChart(box, points, sloLines(direction, mine, rows), {
      label: `${direction} lag`,
      emptyText: `No ${direction === 'grant' ? 'grants' : 'revocations'} in the last 200 changes.`,
    });
    renderPointTable(fig.querySelector('.points .table'), points);
  }
  renderSloReport(slo.status === 'fulfilled' ? slo.value : slo.reason);
  if (changes.status === 'rejected') throw changes.reason;
  if (slo.status === 'rejected') throw slo.reason;
}

/** One SLO line per tier of the direction (the report's tiers, and those of the charted changes). */
function sloLines(direction, changes, reportRows) {
  const byTier = new Map();
  for (const r of reportRows) if ((r.direction === direction || r.direction === 'both') && r.sloMs !== null) byTier.set(r.tier, r.sloMs);
  for (const c of changes) if (c.tier && c.sloMs !== null && !byTier.has(c.tier)) byTier.set(c.tier, c.sloMs);
  return [...byTier].map(([tier, sloMs]) => ({ tier, sloMs }));
}

/** Every charted point as a row (newest first): points that overlap on the chart stay readable here. */
function renderPointTable(box, points) {
  const rows = [...points].sort((a, b) => b.t - a.t || b.revision - a.revision);
  box.closest('details').querySelector('summary').textContent = `List the ${plural(rows.length, 'point', 'points')}`;
  show(box, h('table', { class: 'grid-table stack' },
    h('thead', {}, h('tr', {}, ['revision', 'kind', 'tier', 'decided', 'lag', 'SLO'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows.map((p) => h('tr', { 'data-revision': p.revision, title: describePoint(p) },
      cell('revision', p.revision, 'num'), cell('kind', p.kind, 'mono'), cell('tier', p.tier ?? '—'), cell('decided', fmtTime(new Date(p.t).toISOString())),
      cell('lag', p.pending ? `pending ${fmtMs(p.lagMs)}` : fmtMs(p.lagMs), 'num'), cell('SLO', sloBadge(p.sloMet)))))));
}

/** A table cell that carries its column's name, shown beside the value when a narrow screen stacks the row. */
const cell = (label, value, cls) => h('td', { 'data-label': label, class: cls }, value);

function renderSloReport(report) {
  const box = panel('slo-report');
  if (report instanceof Error) return failed(box, report, 'SLO report');
  const rows = [...report.rows].sort((a, b) => a.direction.localeCompare(b.direction) || tierRank(a.tier) - tierRank(b.tier));
  // Pending changes count at their age so far (the server's lowerBound): the figure reads "≥".
  const bound = (r, ms) => (r.lowerBound && ms !== null ? `≥ ${fmtMs(ms)}` : fmtMs(ms));
  show(box, h('table', { class: 'grid-table stack', 'data-testid': 'slo-table' },
    h('caption', {}, `SLO report, last ${fmtMs(report.windowSeconds * 1000)} · pending changes count at their age so far (≥)`),
    h('thead', {}, h('tr', {}, ['direction', 'tier', 'changes', 'pending', 'p50', 'p99', 'max', 'SLO', 'breaches'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows.length === 0
      ? h('tr', {}, h('td', { colspan: 9, class: 'empty' }, 'No changes in the window.'))
      : rows.map((r) => h('tr', { class: r.breaches > 0 ? 'breach' : '', 'data-row': `${r.direction}/${r.tier}` },
        cell('direction', r.direction), cell('tier', h('span', { class: `tier-dot tier-${r.tier}` }, r.tier ?? '—')), cell('changes', r.count, 'num'),
        cell('pending', r.pending ? `${r.pending} (oldest ${fmtMs(r.oldestPendingMs)})` : '0', 'num'),
        cell('p50', bound(r, r.p50Ms), 'num'), cell('p99', bound(r, r.p99Ms), 'num'), cell('max', bound(r, r.maxMs), 'num'),
        cell('SLO', fmtMs(r.sloMs), 'num'), cell('breaches', r.breaches, 'num')))),
  ));
}

const tierRank = (t) => ['standard', 'high', 'critical'].indexOf(t);

// ---------------------------------------------------------------------------------------------
// The job queue, with each job's checkpoint progress.

const ACTIVE = ['running', 'retrying', 'pending'];
const JOBS_SHOWN = 12;

async function refreshJobs(s) {
  const box = panel('jobs-panel').querySelector('.body');
  let jobs;
  let workers;
  try {
    ({ jobs, workers } = await s.api(`/v1/jobs?org=${encodeURIComponent(s.org)}`));
  } catch (e) {
    if (!s.stopped) failed(box, e, 'jobs');
    throw e;
  }
  if (s.stopped) return;
  renderWorkerBanner(jobs, workers);
  const counts = Object.fromEntries(['running', 'pending', 'retrying', 'failed', 'done'].map((st) => [st, jobs.filter((j) => j.state === st).length]));
  const order = (j) => (ACTIVE.includes(j.state) ? 0 : j.state === 'failed' ? 1 : 2);
  const sorted = [...jobs].sort((a, b) => order(a) - order(b) || (b.finishedAt ?? b.createdAt).localeCompare(a.finishedAt ?? a.createdAt));
  const shown = sorted.slice(0, JOBS_SHOWN);
  show(box,
    h('p', { class: 'chips' }, Object.entries(counts).map(([st, n]) => h('span', { class: `chip ${st}${n ? '' : ' zero'}` }, `${n} ${st}`))),
    jobs.length === 0 ? h('p', { class: 'empty' }, 'No jobs: every change so far was propagated inline.') :
      h('table', { class: 'grid-table jobs' },
        h('thead', {}, h('tr', {}, ['job', 'state', 'progress', 'rows', 'tries'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, shown.map(jobRow))),
    sorted.length > shown.length ? h('p', { class: 'more' }, `+ ${sorted.length - shown.length} older jobs`) : null,
  );
}

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

/**
 * Jobs that wait (pending, retrying) while no worker heartbeats will wait for ever: say so above the
 * board. Also when fewer workers run than LOCKSTEP_EXPECT_WORKERS asks for.
 */
function renderWorkerBanner(jobs, workers) {
  const banner = panel('worker-banner');
  if (!workers) return void (banner.hidden = true); // a server that does not report its workers
  const waiting = jobs.filter((j) => j.state === 'pending' || j.state === 'retrying');
  const oldest = waiting.reduce((min, j) => (j.createdAt < min ? j.createdAt : min), waiting[0]?.createdAt ?? '');
  if (waiting.length > 0 && workers.live === 0) {
    show(banner,
      h('strong', {}, `${plural(waiting.length, 'job waits', 'jobs wait')} and no worker is running to take them`),
      h('p', {}, `The oldest was queued ${fmtAgo(oldest)}. Until a worker runs, these changes are not propagated: start one with `,
        h('code', {}, 'lockstep worker'), ', or serve with ', h('code', {}, 'LOCKSTEP_WORKERS=1'), ' or more.'));
    banner.classList.add('bad');
    banner.hidden = false;
  } else if (workers.expected > 0 && workers.live < workers.expected) {
    show(banner, h('strong', {}, `${workers.live} of ${workers.expected} expected workers are running`),
      h('p', {}, 'LOCKSTEP_EXPECT_WORKERS asks for more: /readyz answers 503 until they heartbeat.'));
    banner.classList.remove('bad');
    banner.hidden = false;
  } else banner.hidden = true;
}

function jobRow(j) {
  const { done, total } = j.progress ?? { done: 0, total: null };
  const pct = total ? Math.min(100, (100 * done) / total) : j.state === 'done' ? 100 : 0;
  const fill = h('span', { class: 'fill' });
  fill.style.width = `${pct.toFixed(1)}%`; // CSSOM, not a style attribute: allowed by the page's CSP
  const when = j.finishedAt ? `finished ${fmtAgo(j.finishedAt)}` : j.startedAt ? `started ${fmtAgo(j.startedAt)}` : `queued ${fmtAgo(j.createdAt)}`;
  return h('tr', { 'data-job': j.id, class: j.state },
    h('td', {}, h('div', { class: 'mono' }, j.scope), h('div', { class: 'sub' }, `${j.direction} · r${j.targetRevision} · ${when}`)),
    h('td', {}, h('span', { class: `badge ${j.state}` }, j.state)),
    h('td', { class: 'progress-cell' },
      h('div', { class: `bar${total === null && j.state === 'running' ? ' indeterminate' : ''}`, role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': total ?? undefined, 'aria-valuenow': done }, fill),
      h('div', { class: 'sub' }, `${done} / ${total ?? '?'} subjects · ${plural(j.batches, 'batch', 'batches')}`)),
    h('td', { class: 'num' }, `+${j.rowsAdded} −${j.rowsRemoved}`),
    h('td', { class: 'num', title: j.lastError ?? '' }, j.attempts, j.lastError ? h('div', { class: 'sub error' }, j.lastError) : null),
  );
}

// ---------------------------------------------------------------------------------------------
// Delivery targets: state, backlog, parked, lag, last error.

async function refreshTargets(s) {
  const box = panel('targets-panel').querySelector('.body');
  let targets;
  try {
    ({ targets } = await s.api(orgPath('/targets')));
  } catch (e) {
    if (!s.stopped) failed(box, e, 'targets');
    throw e;
  }
  if (s.stopped) return;
  show(box, targets.length === 0 ? h('p', { class: 'empty' }, 'No targets: changes are enforced here but pushed nowhere.') :
    h('table', { class: 'grid-table targets', 'data-testid': 'targets-table' },
      h('thead', {}, h('tr', {}, ['target', 'state', 'backlog', 'parked', 'lag p50', 'lag p99', 'last error'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, targets.map((t) => h('tr', { 'data-target': t.id },
        h('td', {}, h('div', {}, t.name, t.critical ? h('span', { class: 'badge bad' }, 'critical') : null), h('div', { class: 'sub mono' }, `${t.kind} · ${t.url ?? t.delivery}`)),
        h('td', {}, h('span', { class: `badge ${t.state === 'active' ? 'ok' : t.state === 'failing' ? 'pending' : 'bad'}` }, t.state)),
        h('td', { class: 'num' }, t.backlog), h('td', { class: 'num' }, t.parked),
        h('td', { class: 'num' }, fmtMs(t.lagMs.p50)), h('td', { class: 'num' }, fmtMs(t.lagMs.p99)),
        h('td', { class: 'sub error' }, t.lastError ?? ''))))));
}

// ---------------------------------------------------------------------------------------------
// Recent revocation receipts; a click shows the full receipt.

async function refreshRevocations(s) {
  const box = panel('revocations-panel').querySelector('.body');
  let changes;
  try {
    ({ changes } = await s.api(orgPath('/changes?direction=revoke&limit=20')));
  } catch (e) {
    s.receiptsShown = '';
    if (!s.stopped) failed(box, e, 'changes');
    throw e;
  }
  if (s.stopped) return;
  // Unchanged receipts are not re-rendered: keeps keyboard focus and the selection steady.
  const fingerprint = JSON.stringify(changes);
  if (fingerprint === s.receiptsShown && box.firstChild) return;
  s.receiptsShown = fingerprint;
  const head = ['revision', 'kind', 'revoked', 'decided', 'effective', 'lag', 'SLO met', 'rows removed', 'window (targets)'];
  show(box, changes.length === 0 ? h('p', { class: 'empty' }, 'No revocations yet.') :
    h('table', { class: 'grid-table receipts', 'data-testid': 'revocations-table' },
      h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, changes.map((c) => {
        const open = () => void openReceipt(s, c.revision);
        return h('tr', {
          'data-revision': c.revision, tabindex: 0, class: `clickable${s.receipt === c.revision ? ' selected' : ''}`,
          onclick: open, onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); open(); } },
        },
        h('td', { class: 'num' }, c.revision), h('td', { class: 'mono' }, c.kind), h('td', { 'data-testid': 'revoked' }, revokedText(c)),
        h('td', {}, fmtTime(c.decidedAt)), h('td', {}, c.effectiveAt ? fmtTime(c.effectiveAt) : h('span', { class: 'badge pending' }, 'pending')),
        h('td', { class: 'num' }, fmtMs(c.lagMs)), h('td', {}, sloBadge(c.sloMet)), h('td', { class: 'num' }, c.rowsRemoved),
        h('td', { class: 'num', 'data-testid': 'window' }, windowCell(c)));
      })),
    ));
}

/**
 * What a revocation took away, from its logged body. A role update removes permissions from a role
 * (the read model, which holds roles, loses no rows: "0 rows removed" alone would hide it).
 */
function revokedText(c) {
  const b = c.body ?? {};
  switch (c.kind) {
    case 'role.update':
      return Array.isArray(b.removed) ? `${b.removed.join(', ') || 'nothing'} from role ${b.slug}` : `permissions of role ${b.slug} (not logged)`;
    case 'membership.remove':
    case 'membership.expired':
      return `${b.member ?? b.subject} from group ${b.group}`;
    case 'assignment.delete':
    case 'assignment.expired':
      return `assignment ${b.id}`;
    case 'subject.deactivate':
    case 'subject.delete':
      return `everything of ${b.id}`;
    case 'group.delete':
      return `group ${b.id} and its grants`;
    case 'resource.update':
    case 'resource.delete':
      return `inherited access to ${b.resource}`;
    case 'permission.update':
      return `permission ${b.slug} (risk now ${b.risk})`;
    default:
      return '—';
  }
}

/** The end-to-end revocation window: decided → the last critical target's acknowledgement. */
function windowCell(c) {
  const targets = c.targets ?? [];
  if (c.revocationWindowMs !== null && c.revocationWindowMs !== undefined) return fmtMs(c.revocationWindowMs);
  if (!targets.some((t) => t.critical)) return targets.length ? `${targets.filter((t) => t.status === 'acked').length}/${targets.length} acked` : '—';
  return h('span', { class: 'badge pending' }, 'awaiting acks');
}

const sloBadge = (met) => met === true ? h('span', { class: 'badge ok' }, 'yes') : met === false ? h('span', { class: 'badge bad' }, 'no') : h('span', { class: 'badge pending' }, '—');

async function openReceipt(s, revision) {
  const box = panel('receipt');
  s.receipt = revision;
  for (const tr of panel('revocations-panel').querySelectorAll('tr[data-revision]')) tr.classList.toggle('selected', Number(tr.dataset.revision) === revision);
  box.hidden = false;
  show(box, h('p', { class: 'empty' }, `Loading receipt r${revision}…`));
  let r;
  try {
    r = await s.api(orgPath(`/changes/${revision}`));
  } catch (e) {
    show(box, h('p', { class: 'empty error' }, describe(e)));
    return;
  }
  if (s.stopped || s.receipt !== revision) return;
  const fields = [
    ['revision', r.revision], ['kind', r.kind], ['direction', r.direction], ['tier', r.tier ?? '—'], ['mode', r.mode],
    ['status', r.status ?? (r.effectiveAt ? 'effective' : 'pending')],
    ['decided at', r.decidedAt], ['enforced at', r.enforcedAt ?? '—'], ['converged at', r.convergedAt ?? r.effectiveAt ?? '—'], ['lag', fmtMs(r.lagMs)],
    ['revocation window', r.revocationWindowMs === null || r.revocationWindowMs === undefined ? '—' : fmtMs(r.revocationWindowMs)],
    ['SLO', r.sloMs === undefined ? '—' : fmtMs(r.sloMs)], ['SLO met', sloBadge(r.sloMet)],
    ['revoked', revokedText(r)], ...(r.kind === 'role.update' && Array.isArray(r.body?.added) && r.body.added.length ? [['granted', `${r.body.added.join(', ')} to role ${r.body.slug}`]] : []),
    ['rows added', r.rowsAdded], ['rows removed', r.rowsRemoved],
    ['actor', r.actor ?? '—'], ['request id', r.requestId ?? '—'],
    ['job', r.job ? `${r.job.id} · ${r.job.scope}${r.job.state ? ` · ${r.job.state}` : ''}` : 'none (applied inline)'],
  ];
  show(box,
    h('div', { class: 'receipt-head' },
      h('h3', {}, `Receipt r${r.revision}`),
      h('button', { type: 'button', class: 'quiet small', onclick: () => { s.receipt = null; box.hidden = true; panel('revocations-panel').querySelector('tr.selected')?.classList.remove('selected'); } }, 'Close')),
    h('dl', {}, fields.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    (r.targets ?? []).length === 0 ? null : [h('h4', {}, 'Targets'), h('table', { class: 'grid-table', 'data-testid': 'receipt-targets' },
      h('thead', {}, h('tr', {}, ['target', 'status', 'events', 'attempts', 'delivered', 'acked'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, r.targets.map((t) => h('tr', { 'data-target': t.id },
        h('td', {}, t.name ?? t.id, t.critical ? ' (critical)' : ''), h('td', {}, h('span', { class: `badge ${t.status === 'acked' ? 'ok' : t.status === 'pending' ? 'pending' : 'bad'}` }, t.status)),
        h('td', { class: 'num' }, t.events), h('td', { class: 'num' }, t.attempts),
        h('td', {}, t.deliveredAt ? fmtTime(t.deliveredAt) : '—'), h('td', {}, t.ackedAt ? fmtTime(t.ackedAt) : '—')))))],
    r.body === undefined ? null : [h('h4', {}, 'Change as requested'), h('pre', {}, JSON.stringify(r.body, null, 2))],
  );
}

// ---------------------------------------------------------------------------------------------
// Drift: on load and on demand (it recomputes the organization, so it is not polled).

async function runDrift() {
  const s = session;
  if (!s) return;
  const box = panel('drift-panel').querySelector('.body');
  const button = $('#drift-run');
  button.disabled = true;
  show(box, h('p', { class: 'empty' }, 'Checking…'));
  try {
    const d = await s.api(orgPath('/drift'), { method: 'POST', body: { limit: 0 } });
    if (s.stopped) return;
    const clean = d.missing === 0 && d.extra === 0;
    // Rows that unfinished jobs will still write or delete are queued propagation, not drift.
    const queued = d.pending ? d.pending.missing + d.pending.extra : 0;
    const verdict = !clean ? ['bad', 'Drift found'] : queued > 0 ? ['pending', 'Propagating'] : ['ok', 'In sync'];
    show(box,
      h('p', { class: `drift-verdict ${verdict[0]}`, 'data-testid': 'drift-verdict' }, verdict[1]),
      clean && queued > 0 ? h('p', { class: 'sub', 'data-testid': 'drift-queued' }, `${plural(queued, 'row', 'rows')} still to be written by ${plural(d.pending.jobs, 'queued job', 'queued jobs')}: not drift.`) : null,
      h('dl', { class: 'compact' },
        h('dt', {}, 'missing rows'), h('dd', { class: 'num' }, d.missing),
        h('dt', {}, 'extra rows'), h('dd', { class: 'num' }, d.extra),
        // Queued propagation, not drift: rows unfinished jobs will still write or delete.
        d.pending ? [h('dt', {}, 'pending in jobs'), h('dd', { class: 'num' }, d.pending.missing + d.pending.extra)] : null,
        h('dt', {}, 'checked'), h('dd', {}, `${fmtTime(d.checkedAt)}`),
        d.repairJob ? [h('dt', {}, 'repair job'), h('dd', { class: 'mono' }, d.repairJob)] : null),
      clean ? null : h('p', { class: 'sub' }, 'The read model differs from the policy. Repair with POST …/drift {"repair": true} (write key).'),
    );
  } catch (e) {
    if (s.stopped) return;
    failed(box, e, 'drift');
    setStatus(describe(e), true);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Check latency from /metrics (admin keys only).

async function refreshLatency(s) {
  const box = panel('check-latency-panel').querySelector('.body');
  if (s.metricsDenied) return;
  let text;
  try {
    text = await s.api('/metrics');
  } catch (e) {
    if (s.stopped) return;
    if (e instanceof ApiProblem && e.status === 403) {
      s.metricsDenied = true;
      show(box, h('p', { class: 'empty', 'data-testid': 'metrics-denied' }, 'Metrics need an admin key.'));
      return; // expected with a write key: not an error for the status line
    }
    failed(box, e, 'metrics');
    throw e;
  }
  if (s.stopped) return;
  const modes = readHistogram(text, 'lockstep_check_seconds', 'consistency');
  const results = readHistogram(text, 'lockstep_check_seconds', 'result');
  const allowed = results.get('allowed')?.count ?? 0;
  const denied = results.get('denied')?.count ?? 0;
  const rows = [...modes].filter(([, m]) => m.count > 0).sort(([a], [b]) => a.localeCompare(b));
  show(box,
    rows.length === 0 ? h('p', { class: 'empty' }, 'No checks served yet.') :
      h('table', { class: 'grid-table' },
        h('thead', {}, h('tr', {}, ['consistency', 'checks', 'p50', 'p99'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows.map(([mode, m]) => h('tr', { 'data-consistency': mode },
          h('td', { class: 'mono' }, mode), h('td', { class: 'num' }, m.count),
          h('td', { class: 'num' }, fmtMs(secToMs(quantile(0.5, m.buckets)))),
          h('td', { class: 'num', title: `mean ${fmtMs((m.sum / m.count) * 1000)}` }, fmtMs(secToMs(quantile(0.99, m.buckets)))))))),
    h('p', { class: 'sub' }, `${allowed} allowed · ${denied} denied · estimates from histogram buckets`),
  );
}

const secToMs = (v) => (v === null ? null : v * 1000);

// ---------------------------------------------------------------------------------------------

function init() {
  $('#login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const key = $('#key').value.trim();
    const org = $('#org').value.trim();
    if (key) void connect(key, org);
  });
  $('#org-picker').addEventListener('change', (ev) => {
    const key = session?.key ?? sessionStorage.getItem(STORE.key);
    if (key && ev.target.value) void connect(key, ev.target.value);
  });
  $('#signout').addEventListener('click', () => signOut());
  $('#drift-run').addEventListener('click', () => void runDrift());
  const key = sessionStorage.getItem(STORE.key);
  const org = sessionStorage.getItem(STORE.org);
  if (org) $('#org').value = org;
  if (key) void connect(key, org ?? '');
}

init();
