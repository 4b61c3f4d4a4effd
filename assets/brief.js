/* /brief: a focused card opens its drawer with Enter or Space, Esc closes the drawer.
   The Excel button starts a background export job (POST /brief/exports with the page's own
   from/to/as_of), shows its progress beside the button and downloads the file when it is done. The
   link's href stays a plain GET for a middle click or a script (it answers the file when the job
   finishes in time). Texts come from the button's data-* attributes (the page's language). */
(function () {
  function fill(text, job) {
    const n = x => (x == null ? '…' : Number(x).toLocaleString('en-US'));
    return (text || '').replace('{pct}', Math.round(100 * (job.progress || 0)))
      .replace('{done}', n(job.rows_done)).replace('{total}', n(job.rows_total))
      .replace('{error}', job.error || '');
  }
  async function json(r) {
    let body = {};
    try { body = await r.json(); } catch (e) { body = {}; }
    if (!r.ok) { throw new Error((body.error && body.error.message) || ('HTTP ' + r.status)); }
    return body;
  }
  async function run(a, status) {
    const say = t => { if (status) { status.textContent = t; } };
    const query = (a.getAttribute('href') || '').split('?')[1] || '';
    let job = await json(await fetch('/brief/exports?' + query,
      {method: 'POST', credentials: 'same-origin', headers: {'Accept': 'application/json'}}));
    while (job.state !== 'done') {
      if (job.state === 'failed') { throw new Error(job.error || 'failed'); }
      say(fill(a.dataset.running, job));
      await new Promise(res => setTimeout(res, 700));
      job = await json(await fetch(job.status_url, {credentials: 'same-origin'}));
    }
    say(a.dataset.done || '');
    window.location.assign(job.download_url);
  }
  document.addEventListener('click', function (ev) {
    const a = ev.target && ev.target.closest && ev.target.closest('#brief-xlsx');
    if (!a || ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.altKey) { return; }
    ev.preventDefault();
    if (a.dataset.busy === '1' || (a.getAttribute('href') || '#') === '#') { return; }
    a.dataset.busy = '1';
    const status = document.getElementById('brief-xlsx-status');
    run(a, status).catch(e => { if (status) { status.textContent = fill(a.dataset.failed, {error: e.message}); } })
      .finally(() => { a.dataset.busy = ''; });
  });
  document.addEventListener('keydown', function (ev) {
    const drawer = document.getElementById('brief-drill');
    if (ev.key === 'Escape' && drawer && drawer.classList.contains('open')) {
      const close = document.getElementById('brief-drill-close');
      if (close) { close.click(); }
      return;
    }
    const card = ev.target && ev.target.closest && ev.target.closest('.brief-card.drillable');
    if (card && (ev.key === 'Enter' || ev.key === ' ')) { ev.preventDefault(); card.click(); }
  });
})();
