/* Workbench keyboard: arrows move through the grid (AG Grid), Enter opens the focused row,
   Esc closes the form or the panel, a letter runs the action whose button shows it,
   Ctrl+Enter confirms the open form. Typing in a field never triggers a shortcut. */
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
    if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    const api = grid();
    if (ev.key === 'Enter' && api && el.closest && el.closest('#dispatch-grid')) {
      const cell = api.getFocusedCell();
      const node = cell && api.getDisplayedRowAtIndex(cell.rowIndex);
      if (node && node.data) { ev.preventDefault(); node.setSelected(true, true); }
      return;
    }
    if (ev.key.length === 1 && /[a-z]/i.test(ev.key)) {
      const btn = document.querySelector('.case-actions button[data-key="' + ev.key.toLowerCase() + '"]');
      if (visible(btn)) { ev.preventDefault(); btn.click(); }
    }
  }, true);
})();
