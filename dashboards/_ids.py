"""Component ids shared by pages and tests."""
SHELL_URL = "shell-url"
SHELL_NAV = "shell-nav"
SHELL_CLOCK = "shell-clock"
SHELL_CLOCK_TICK = "shell-clock-tick"

WALL_TICK = "wall-tick"
WALL_UPDATED = "wall-updated"
WALL_TILES = "wall-tiles"
WALL_MAP = "wall-map"
WALL_TREND = "wall-trend"
WALL_STATES = "wall-states"
WALL_CATEGORIES = "wall-categories"
WALL_CHANNELS = "wall-channels"
WALL_RECENT = "wall-recent"

BRIEF_TICK = "brief-tick"
BRIEF_PERIOD = "brief-period"          # store: {from, to, as_of, preset}
BRIEF_PRESET = "brief-preset"
BRIEF_RANGE = "brief-range"
BRIEF_PDF = "brief-pdf"
BRIEF_XLSX = "brief-xlsx"
BRIEF_PERIOD_TEXT = "brief-period-text"
BRIEF_BODY = "brief-body"
BRIEF_DRILL = "brief-drill"
BRIEF_DRILL_CLOSE = "brief-drill-close"
BRIEF_CARD = "brief-card"              # pattern-matching type, with "code"
BRIEF_CHOICE = "brief-choice"          # local store: the leader's last picker choice {preset, start, end}
BRIEF_DRILL_HEAD = "brief-drill-head"  # the drawer's title, numbers and 口径
BRIEF_DRILL_KEY = "brief-drill-key"    # store: {code, from, to, as_of} of the open drawer
BRIEF_DRILL_GRID = "brief-drill-grid"  # the drawer's case list (AG Grid, infinite row model)
BRIEF_DRILL_TABLE = "brief-drill-table"  # the drawer body: the grid comes once the cards are drawn
BRIEF_DRILL_PREPARE = "brief-drill-prepare"  # interval: looks for the drawn cards, then stops
BRIEF_CARDS_DRAWN = "brief-cards-drawn"      # store: set once the cards are drawn (builds the grid)
BRIEF_XLSX_STATUS = "brief-xlsx-status"

DISPATCH_VIEW = "dispatch-view"
DISPATCH_TABLE = "dispatch-table"
DISPATCH_COUNTS = "dispatch-counts"
DISPATCH_TICK = "dispatch-tick"

# workbench (issue 5): the queue grid on /dispatch
DISPATCH_GRID = "dispatch-grid"
DISPATCH_SEARCH = "dispatch-search"
DISPATCH_POLL = "dispatch-poll"
DISPATCH_VERSION = "dispatch-version"
DISPATCH_REFRESH = "dispatch-refresh"
DISPATCH_TOTAL = "dispatch-total"
DISPATCH_PANEL = "dispatch-panel"
DISPATCH_BULK = "dispatch-bulk"
DISPATCH_BULK_COUNT = "dispatch-bulk-count"
DISPATCH_BULK_DEPT = "dispatch-bulk-dept"
DISPATCH_BULK_GO = "dispatch-bulk-go"
DISPATCH_BULK_RESULT = "dispatch-bulk-result"
DISPATCH_HELP = "dispatch-help"

# the case panel (side panel on /dispatch and the page /incidents/<id>)
CASE_ID = "case-id"
CASE_DATA = "case-data"
CASE_DONE = "case-done"
CASE_BOX = "case-box"
CASE_BODY = "case-body"
CASE_MAP = "case-map"
CASE_ACTIONS = "case-actions"
CASE_COUNTDOWN = "case-countdown"
CASE_TICK = "case-tick"
CASE_CLOSE = "case-close"
CASE_PENDING = "case-pending"
CASE_FORM = "case-form"
CASE_FORM_TITLE = "case-form-title"
CASE_REASON = "case-reason"
CASE_RETURN_REASON = "case-return-reason"
CASE_NOTE = "case-note"
CASE_HOURS = "case-hours"
CASE_DEPT = "case-dept"
CASE_DUP = "case-dup"
CASE_LEVEL = "case-level"
CASE_CONFIRM = "case-confirm"
CASE_CANCEL = "case-cancel"
CASE_RESULT = "case-result"
CASE_PHOTOS = "case-photos"            # the action form's dcc.Upload (resolve, verify)
CASE_PHOTOS_LIST = "case-photos-list"  # the names of the photos chosen
CASE_ACT = "case-act"        # pattern-matching type: {"type": CASE_ACT, "action": …}
CASE_MERGE = "case-merge"    # pattern-matching type: {"type": CASE_MERGE, "target": id}
CASE_DECIDE = "case-decide"  # pattern-matching type: {"type": CASE_DECIDE, "action": approve|reject, "request": id}
