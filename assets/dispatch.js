/* Workbench keyboard: arrows move through the grid (AG Grid), Enter opens the focused row,
   Esc closes the form or the panel, a letter runs the action whose button shows it,
   Ctrl+Enter confirms the open form, Z undoes a one-click action in its window. Typing in a field never triggers a shortcut. */
(function () {
  function grid() {
    try { return window.dash_ag_grid && dash_ag_grid.getApi('dispatch-grid'); } catch (e) { return null; }
  }
  function visible(el) { return el && el.offsetParent !== null; }
  document.addEventListener('keydown', function (ev) {
    const el = ev.target;
    const typing = el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.isContentEditable ||
                          (el.closest && el.closest('.dash-dropdown')));
    const form = document.getElementById('case-form');
    const formOpen = form && !form.classList.contains('hidden');
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey) && formOpen) {
      ev.preventDefault(); document.getElementById('case-confirm').click(); return;
    }
    if (ev.key === 'Escape') {
      if (formOpen) { document.getElementById('case-cancel').click(); }
      else { const c = document.getElementById('case-close'); if (visible(c)) { c.click(); } }
      return;
    }
    const undo = document.getElementById('case-undo');
    if (!typing && (ev.key === 'z' || ev.key === 'Z') && !ev.altKey && visible(undo)) {
      ev.preventDefault(); undo.click(); return;            // Z or Ctrl+Z while an action waits
    }
    if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    if (ev.shiftKey && ev.key.length === 1 && /[a-z]/i.test(ev.key)) {   // Shift + key: the action's form
      const more = document.querySelector('.case-actions:not(.queued) button[data-form-key="' + ev.key.toLowerCase() + '"]');
      if (visible(more)) { ev.preventDefault(); more.click(); }
      return;
    }
    const api = grid();
    if (ev.key === 'Enter' && api && el.closest && el.closest('#dispatch-grid')) {
      const cell = api.getFocusedCell();
      const node = cell && api.getDisplayedRowAtIndex(cell.rowIndex);
      if (node && node.data) { ev.preventDefault(); node.setSelected(true, true); }
      return;
    }
    if (ev.key.length === 1 && /[a-z0-9]/i.test(ev.key)) {   // letters and, for 回访 results, digits
      const btn = document.querySelector('.case-actions:not(.queued) button[data-key="' + ev.key.toLowerCase() + '"]');
      if (visible(btn)) { ev.preventDefault(); btn.click(); }
    }
  }, true);
})();

/* The queue's title cell: 新 (dispatched, not yet signed for), 紧急 / 特急 and 督办 tags before the title. */
window.dashAgGridComponentFunctions = window.dashAgGridComponentFunctions || {};
window.dashAgGridComponentFunctions.CaseTitle = function (props) {
  const e = React.createElement, d = props.data || {};
  const tags = (d.tags || []).map(function (tag) {
    return e('span', {key: tag[0], className: 'case-tag t-' + tag[0]}, tag[1]);
  });
  return e('span', {className: 'case-title-cell'}, tags.concat([props.value]));
};

/* A one-click action still in its undo window when the page goes away (another page, a closed tab)
   is sent through the API with the same request id: the server applies it once however it arrives. */
(function () {
  function flush() {
    const q = window.cityopsQueued;
    if (!q) { return; }
    window.cityopsQueued = null;
    fetch('/api/v1/incidents/' + encodeURIComponent(q.case) + '/actions', {
      method: 'POST', keepalive: true, credentials: 'same-origin', headers: {'Content-Type': 'application/json'},
      // a 回访 result button (revisit_satisfied …) is the API's revisit with its result
      body: JSON.stringify(q.action.indexOf('revisit_') === 0
        ? {action: 'revisit', result: q.action.slice(8), version: q.version, request_id: q.request_id}
        : {action: q.action, version: q.version, request_id: q.request_id})});
  }
  window.addEventListener('pagehide', flush);
  // moving to another page inside the app removes the panel without unloading the page
  setInterval(function () {
    if (window.cityopsQueued && !document.getElementById('case-queued-bar')) { flush(); }
  }, 500);
})();

/* The queue on a phone (issue 14 item 7): one card per case — light, number, tags, the clock; the
   problem; category · district · state — in a single column with taller rows, no checkboxes (bulk
   dispatch is a desk job). */
window.dashAgGridComponentFunctions.CaseCard = function (props) {
  const e = React.createElement, d = props.data || {};
  if (!d.id) { return null; }
  const tags = (d.tags || []).map(function (tag) {
    return e('span', {key: tag[0], className: 'case-tag t-' + tag[0]}, tag[1]);
  });
  const top = [e('span', {key: 'l', className: 'dot ' + (d.light || 'none')}),
               e('b', {key: 'i', className: 'cc-id'}, '#' + d.id)].concat(tags);
  if (d.sign_light) { top.push(e('span', {key: 's', className: 'cc-sign light-' + d.sign_light, title: d.sign_tip}, '◆')); }
  const clock = d.remaining && d.remaining !== '—' ? d.remaining : '';   // no running clock: nothing, not a dash
  top.push(e('span', {key: 'c', className: 'cc-clock' + (d.light === 'red' ? ' over' : '')}, clock));
  return e('div', {className: 'case-card'}, [
    e('div', {key: 't', className: 'cc-top'}, top),
    e('div', {key: 'p', className: 'cc-title'}, d.title),
    e('div', {key: 'm', className: 'cc-meta'}, [d.category, d.district, d.state].filter(Boolean).join(' · '))]);
};

/* the queue's row height when its grid is made (the theme in dispatch.py asks): cards on a phone */
window.dashAgGridFunctions = window.dashAgGridFunctions || {};
window.dashAgGridFunctions.queueRowHeight = function () {
  return window.matchMedia('(max-width: 700px)').matches ? 86 : 34;
};

(function () {
  const phone = window.matchMedia('(max-width: 700px)');
  const coarse = window.matchMedia('(pointer: coarse)');
  // once per grid, when it is made: its rows already have the card height on a phone (the theme's
  // rowHeight in dispatch.py); a grid made on a desk stays a table
  function applyQueueLayout() {
    let api = null;
    try { api = window.dash_ag_grid && dash_ag_grid.getApi('dispatch-grid'); } catch (e) { api = null; }
    if (!api || (api.isDestroyed && api.isDestroyed()) || api.cityopsLayout) { return; }
    api.cityopsLayout = phone.matches ? 'cards' : 'table';
    if (api.cityopsLayout === 'table') { return; }
    const others = api.getColumns().map(function (c) { return c.getColId(); })
      .filter(function (id) { return id !== 'card' && id.indexOf('ag-Grid-') !== 0; });
    api.setColumnsVisible(others, false);
    api.setColumnsVisible(['card'], true);
    const sel = Object.assign({}, api.getGridOption('rowSelection') || {});
    sel.checkboxes = false;
    api.setGridOption('rowSelection', sel);
  }
  // the photo input of a resolve / verify form opens the back camera on a phone
  function cameraInput() {
    if (!(phone.matches || coarse.matches)) { return; }
    document.querySelectorAll('#case-photos input[type=file]:not([capture])').forEach(function (input) {
      input.setAttribute('accept', 'image/*');
      input.setAttribute('capture', 'environment');
    });
  }
  // on a phone the case is one long column: an opened form and a new result are brought into sight
  let lastResult = '';
  function followCase() {
    if (!phone.matches) { return; }
    const form = document.getElementById('case-form');
    if (form) {
      const open = !form.classList.contains('hidden');
      if (open && form.dataset.shown !== '1') { form.scrollIntoView({block: 'start'}); }
      form.dataset.shown = open ? '1' : '';
    }
    const result = document.getElementById('case-result');
    const text = result ? result.textContent : '';
    if (text && text !== lastResult) {
      const panel = result.closest('.wb-panel');
      if (panel) { panel.scrollTop = 0; } else { result.scrollIntoView({block: 'center'}); }
    }
    lastResult = text;
  }
  setInterval(function () { applyQueueLayout(); cameraInput(); followCase(); }, 300);
})();
