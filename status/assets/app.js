// cablecar status page. Loads GET api/status, applies the Server-Sent Events
// of GET api/events as they arrive and reloads the snapshot every 10 s to
// correct drift (docs/admin-api.md).
//
// Every string from the server is rendered with textContent or as an
// attribute value, never as HTML: users, stream names, identifiers and
// previews come from clients and publishers.
//
// Hooks for tests: body[data-loaded="1"] once a snapshot is shown,
// body[data-live="1"] while the event stream is open, #broker-state[data-up],
// dd[data-counter=NAME], and rows with data attributes in #connections,
// #streams, #broadcasts, #rejections and #auth-failures.

const REFRESH_MS = 10000
const FETCH_TIMEOUT_MS = 8000
const FIRST_LOAD_DELAY_MS = 1500 // load without waiting longer for the event stream
const RENDER_DELAY_MS = 150 // events are drawn in batches at most this often
const TABLE_DELAY_MS = 1000 // the connections table is rebuilt at most this often for events
const RETRY_MIN_MS = 2000
const RETRY_MAX_MS = 30000
const MAX_BROADCASTS = 200
const MAX_RECENT = 100
const MAX_CONNECTION_ROWS = 200
const MAX_STREAM_ROWS = 500
const MAX_TEXT = 200 // longer strings are cut on screen; the title holds all of it
const LEVELS = ["debug", "info", "warn", "error"]
const EVENTS = ["broadcast", "rejection", "auth_failure", "connect", "disconnect", "broker"]

const $ = (id) => document.getElementById(id)

// ---- URLs and requests ----

const token = new URLSearchParams(location.search).get("admin_token") || ""

// apiURL resolves path against the page, so a path prefix in front of the
// admin listener is kept, and adds the admin token when the page has one.
function apiURL(path) {
  const url = new URL(path, location.href)
  if (token) url.searchParams.set("admin_token", token)
  return url.href
}

function requestHeaders(extra = {}) {
  const h = { Accept: "application/json", ...extra }
  if (token) h.Authorization = "Bearer " + token
  return h
}

class HTTPError extends Error {
  constructor(status, text) {
    super(`HTTP ${status}${text ? ": " + text : ""}`)
    this.status = status
  }
}

async function request(path, init = {}) {
  const ctl = new AbortController()
  const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS)
  try {
    const res = await fetch(apiURL(path), { cache: "no-store", ...init, signal: ctl.signal })
    if (!res.ok) {
      const text = (await res.text().catch(() => "")).trim().slice(0, 200)
      throw new HTTPError(res.status, text)
    }
    return res
  } finally {
    clearTimeout(timer)
  }
}

function describe(err) {
  if (err instanceof HTTPError && err.status === 401) {
    return "The admin listener refused the request (401). Open this page with ?admin_token=… in its address."
  }
  if (err && err.name === "AbortError") return "The admin listener did not answer in time."
  if (err instanceof HTTPError) return err.message
  return "Cannot reach the admin listener" + (err && err.message ? ` (${err.message})` : "") + "."
}

// ---- formatting ----

let skew = 0 // the server's clock minus ours, in ms, from the Date header
const now = () => Date.now() + skew
const pad = (n) => String(n).padStart(2, "0")
const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : 0)
const str = (v) => (v == null ? "" : String(v))
const list = (v) => (Array.isArray(v) ? v : [])

function parseTime(s) {
  const t = Date.parse(str(s))
  return Number.isNaN(t) ? null : t
}

function clock(t) {
  const d = new Date(t)
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  if (new Date(now()).toDateString() === d.toDateString()) return time
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`
}

function duration(ms) {
  let s = Math.max(0, Math.floor(ms / 1000))
  const d = Math.floor(s / 86400)
  s -= d * 86400
  const h = Math.floor(s / 3600)
  s -= h * 3600
  const m = Math.floor(s / 60)
  s -= m * 60
  if (d) return `${d}d ${h}h ${m}m`
  if (h) return `${h}h ${m}m`
  if (m) return `${m}m ${s}s`
  return `${s}s`
}

function age(ms) {
  const m = Math.floor(Math.max(0, ms) / 60000)
  if (m < 1) return "<1m"
  if (m < 60) return `${m}m`
  if (m < 1440) return `${Math.floor(m / 60)}h ${m % 60}m`
  return `${Math.floor(m / 1440)}d ${Math.floor((m % 1440) / 60)}h`
}

const utf8 = new TextEncoder()

// Characters that hide or reorder text (controls, bidi overrides, zero-width
// marks) are shown as ⟨U+XXXX⟩, so "\u202Egnp.exe" cannot pose as "exe.png".
const INVISIBLE = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u00AD\u061C\u180E\u200B-\u200F\u2028-\u202E\u2060-\u206F\uFEFF\uFFF9-\uFFFB]/g
function visible(s) {
  return str(s)
    .replace(/[\t\n\r]/g, " ")
    .replace(INVISIBLE, (c) => `⟨U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}⟩`)
}
const grouped = (n) => num(n).toLocaleString("en-US")

// ---- DOM helpers ----

// cell makes a <td> showing value as text; long values are cut on screen
// and kept whole in the title.
function cell(label, value, cls) {
  const td = document.createElement("td")
  td.dataset.label = label
  if (cls) td.className = cls
  const text = visible(value)
  if (text === "") {
    td.textContent = "—"
    td.classList.add("none")
  } else if (text.length > MAX_TEXT) {
    td.textContent = text.slice(0, MAX_TEXT) + "…"
    td.title = text
  } else {
    td.textContent = text
  }
  return td
}

function numCell(label, value) {
  return cell(label, grouped(value), "n")
}

function timeCell(label, at, suffix) {
  const td = document.createElement("td")
  td.dataset.label = label
  td.className = "time"
  const t = parseTime(at)
  if (t == null) {
    td.textContent = visible(at) || "—"
    return td
  }
  const time = document.createElement("time")
  time.dateTime = new Date(t).toISOString()
  time.title = new Date(t).toString()
  time.textContent = clock(t)
  td.append(time)
  if (suffix) {
    const span = document.createElement("span")
    span.className = "age"
    span.textContent = suffix(t)
    td.append(" ", span)
  }
  return td
}

function row(data, cells, fresh) {
  const tr = document.createElement("tr")
  for (const [k, v] of Object.entries(data)) tr.dataset[k] = str(v)
  if (fresh) tr.className = "fresh"
  tr.append(...cells)
  return tr
}

// ---- state ----

const state = {
  loaded: false,
  counters: {},
  broker: { name: "", up: null, reason: "", lag: null },
  startedAt: null,
  version: "",
  logLevel: "",
  connections: new Map(), // id → {id, user, remote, since, subscriptions}
  streams: [], // {name, subscribers}
  jobs: [], // job watchers: {backend, watching, lag_seconds, events, …}
  streamSort: { key: "subscribers", desc: true },
  skipped: 0, // broadcast events the server left out (rate limit)
}

let lastLoad = "" // when the last snapshot was applied, as shown
let levelPending = false // a PUT loglevel is under way: keep the select as the user set it

// RecentList is one "newest first" list (broadcasts, rejections, auth
// failures): a capped array plus its table body, drawn incrementally.
class RecentList {
  constructor({ id, cap, key, build }) {
    this.body = $(id)
    this.empty = $(id + "-empty")
    this.cap = cap
    this.key = key
    this.build = build // (entry, fresh) → <tr>
    this.items = []
    this.fresh = 0 // entries at the front that are not drawn yet
    this.full = true // redraw everything
    this.paused = false
    this.snap = new Map() // key → count, of the last snapshot's entries
  }

  // reset replaces the list with a snapshot's entries. Events for those
  // entries that arrive afterwards are recognised and dropped once.
  reset(entries) {
    this.items = list(entries).slice(0, this.cap)
    this.snap = new Map()
    for (const e of this.items) {
      const k = this.key(e)
      this.snap.set(k, (this.snap.get(k) || 0) + 1)
    }
    this.fresh = 0
    this.full = true
  }

  // add puts an event's entry at the front; false if it was a duplicate
  // of a snapshot entry.
  add(entry) {
    const k = this.key(entry)
    const n = this.snap.get(k)
    if (n) {
      if (n === 1) this.snap.delete(k)
      else this.snap.set(k, n - 1)
      return false
    }
    this.items.unshift(entry)
    if (this.items.length > this.cap) this.items.length = this.cap
    this.fresh++
    return true
  }

  render() {
    if (this.paused) return
    if (this.full || this.fresh >= this.items.length) {
      this.body.replaceChildren(...this.items.map((e) => this.build(e, false)))
    } else if (this.fresh > 0) {
      const frag = document.createDocumentFragment()
      for (const e of this.items.slice(0, this.fresh)) frag.append(this.build(e, true))
      this.body.prepend(frag)
      while (this.body.rows.length > this.items.length) this.body.lastElementChild.remove()
    }
    this.fresh = 0
    this.full = false
    this.empty.hidden = this.items.length > 0
  }
}

const broadcasts = new RecentList({
  id: "broadcasts",
  cap: MAX_BROADCASTS,
  key: (b) => JSON.stringify([b.at, b.stream, b.bytes, b.delivered, b.preview]),
  build(b, fresh) {
    const preview = cell("Preview", b.preview, "preview")
    preview.title = visible(b.preview)
    // Previews are the first 120 bytes; mark a cut one.
    if (num(b.bytes) > utf8.encode(str(b.preview)).length) preview.classList.add("cut")
    return row({ stream: b.stream, bytes: num(b.bytes), delivered: num(b.delivered) }, [
      timeCell("Time", b.at),
      cell("Stream", b.stream, "name"),
      numCell("Bytes", b.bytes),
      numCell("Delivered to", b.delivered),
      preview,
    ], fresh)
  },
})

const rejections = new RecentList({
  id: "rejections",
  cap: MAX_RECENT,
  key: (r) => JSON.stringify([r.at, r.conn, r.user, r.channel, r.identifier, r.reason, r.detail]),
  build(r, fresh) {
    const channel = cell("Channel", r.channel, "id chan")
    if (r.identifier) channel.title = visible(`connection ${str(r.conn)}, identifier ${str(r.identifier)}`)
    return row({ reason: r.reason, channel: r.channel, user: r.user, conn: r.conn }, [
      timeCell("Time", r.at),
      cell("User", r.user, "id"),
      channel,
      cell("Reason", r.reason, "code"),
      cell("Detail", r.detail, "detail"),
    ], fresh)
  },
})

const authFailures = new RecentList({
  id: "auth-failures",
  cap: MAX_RECENT,
  key: (a) => JSON.stringify([a.at, a.remote, a.reason, a.detail]),
  build(a, fresh) {
    return row({ reason: a.reason, remote: a.remote }, [
      timeCell("Time", a.at),
      cell("Remote", a.remote, "id addr"),
      cell("Reason", a.reason, "code"),
      cell("Detail", a.detail, "detail"),
    ], fresh)
  },
})

const recentLists = [broadcasts, rejections, authFailures]

// ---- applying data ----

function applySnapshot(s, reset) {
  state.loaded = true
  state.version = str(s.version)
  state.startedAt = parseTime(s.started_at)
  const b = s.broker || {}
  state.broker = { name: str(b.name), up: b.up === true, reason: str(b.reason),
    lag: typeof b.lag_seconds === "number" ? b.lag_seconds : null }
  if (!levelPending) state.logLevel = str(s.log_level)
  state.counters = { ...(s.counters || {}) }
  state.connections = new Map()
  for (const c of list(s.connections)) state.connections.set(c.id, c)
  state.streams = list(s.streams).slice()
  state.jobs = list(s.jobs).slice()
  if (reset) {
    broadcasts.reset(s.recent_broadcasts)
    rejections.reset(s.recent_rejections)
    authFailures.reset(s.recent_auth_failures)
  }
  lastLoad = clock(now())
  $("refreshed").textContent = "loaded at " + lastLoad
  document.body.dataset.loaded = "1"
  dirty.header = dirty.connections = dirty.streams = true
}

function bump(name, by = 1) {
  if (typeof state.counters[name] === "number") state.counters[name] = Math.max(0, state.counters[name] + by)
  dirty.header = true
}

function applyEvent(name, d) {
  switch (name) {
    case "broadcast": {
      const skipped = num(d.skipped)
      if (skipped > 0) {
        state.skipped += skipped
        bump("broadcasts_received", skipped)
      }
      if (broadcasts.add(d)) bump("broadcasts_received")
      break
    }
    case "rejection":
      if (rejections.add(d)) bump("subscriptions_rejected")
      break
    case "auth_failure":
      if (authFailures.add(d)) bump("auth_failures")
      break
    case "connect":
      if (!state.connections.has(d.id)) {
        state.connections.set(d.id, { id: d.id, user: d.user, remote: d.remote, since: d.at, subscriptions: 0 })
        bump("connections_open")
        bump("connections_total")
        dirty.connections = true
      }
      break
    case "disconnect": {
      // The snapshot lists at most 1,000 connections; past that, a
      // disconnect of one not listed still counts.
      const truncated = state.connections.size < num(state.counters.connections_open)
      if (state.connections.delete(d.id) || truncated) bump("connections_open", -1)
      dirty.connections = true
      break
    }
    case "broker":
      state.broker = { ...state.broker, up: d.up === true, reason: str(d.reason) }
      dirty.header = true
      break
  }
  scheduleRender()
}

// ---- rendering ----

const dirty = { header: true, connections: true, streams: true }
let renderTimer = null
let connectionsDrawn = 0 // when the connections table was last rebuilt (performance.now)

function scheduleRender() {
  if (renderTimer == null) renderTimer = setTimeout(render, RENDER_DELAY_MS, false)
}

// render draws what changed. Connect and disconnect events rebuild the
// connections table at most once a second (pass force for user actions and
// snapshots).
function render(force = true) {
  clearTimeout(renderTimer)
  renderTimer = null
  if (dirty.header) renderHeader()
  if (dirty.connections) {
    const wait = connectionsDrawn + TABLE_DELAY_MS - performance.now()
    if (force || wait <= 0) {
      renderConnections()
      connectionsDrawn = performance.now()
      dirty.connections = false
    } else {
      renderTimer = setTimeout(render, Math.min(wait, RENDER_DELAY_MS), false)
    }
  }
  if (dirty.streams) renderStreams()
  renderJobs()
  for (const l of recentLists) l.render()
  renderPause()
  dirty.header = dirty.streams = false
}

// brokerLabel names a broker as people write it.
function brokerLabel(name) {
  const labels = { memory: "in-memory", redis: "Redis", postgres: "PostgreSQL", solid_cable: "Solid Cable" }
  return (Object.hasOwn(labels, name) && labels[name]) || visible(name) || "broker"
}

function renderHeader() {
  $("version").textContent = visible(state.version)
  const b = state.broker
  const el = $("broker-state")
  if (state.loaded) {
    el.dataset.up = b.up ? "true" : "false"
    el.textContent = `${brokerLabel(b.name)}: ${b.up ? "up" : "down"}`
  }
  // Solid Cable's poll lag says how late it delivers while up.
  const lag = b.up && b.lag !== null && b.lag > 0 ? `poll lag ${Math.round(b.lag * 1000)} ms` : ""
  $("broker-reason").textContent = visible(b.reason) || lag
  document.title = (state.loaded && !b.up ? "broker down · " : "") + "cablecar status"
  renderUptime()

  const sel = $("log-level")
  if (state.logLevel && ![...sel.options].some((o) => o.value === state.logLevel)) {
    const o = document.createElement("option")
    o.value = state.logLevel
    o.textContent = visible(state.logLevel)
    sel.append(o)
  }
  if (!levelPending) {
    sel.value = state.logLevel
    sel.disabled = !state.loaded
  }

  const known = new Set()
  for (const dd of document.querySelectorAll("#counters dd[data-counter]")) {
    known.add(dd.dataset.counter)
    setCounter(dd, state.counters[dd.dataset.counter])
  }
  // Counters this page does not know yet are shown under their own names.
  for (const [k, v] of Object.entries(state.counters)) {
    if (known.has(k) || typeof v !== "number") continue
    const div = document.createElement("div")
    const dt = document.createElement("dt")
    dt.textContent = visible(k.replaceAll("_", " "))
    const dd = document.createElement("dd")
    dd.dataset.counter = k
    setCounter(dd, v)
    div.append(dt, dd)
    $("counters").append(div)
  }

  const skipped = $("broadcasts-skipped")
  skipped.hidden = state.skipped === 0
  skipped.textContent = `${grouped(state.skipped)} not listed (over 50/s)`
}

function setCounter(dd, v) {
  dd.textContent = typeof v === "number" ? grouped(v) : "–"
  if (dd.hasAttribute("data-bad")) dd.classList.toggle("bad", typeof v === "number" && v > 0)
}

function renderUptime() {
  $("uptime").textContent = state.startedAt == null ? "–" : duration(now() - state.startedAt)
  if (state.startedAt != null) $("uptime").title = "since " + new Date(state.startedAt).toString()
}

function filterText(id) {
  return $(id).value.trim().toLowerCase()
}

function renderConnections() {
  const q = filterText("connections-filter")
  let all = [...state.connections.values()]
  if (q) {
    all = all.filter((c) => [c.id, c.user, c.remote].some((v) => str(v).toLowerCase().includes(q)))
  }
  all.sort((a, b) => (num(b.id) - num(a.id)) || str(b.id).localeCompare(str(a.id)))
  const shown = all.slice(0, MAX_CONNECTION_ROWS)
  const t = now()
  $("connections").replaceChildren(...shown.map((c) => row({ id: c.id, user: c.user }, [
    cell("ID", c.id, "n"),
    cell("User", c.user, "id"),
    cell("Remote", c.remote, "id addr"),
    timeCell("Since", c.since, (since) => age(t - since)),
    numCell("Subscriptions", c.subscriptions),
  ])))
  const open = typeof state.counters.connections_open === "number" ? state.counters.connections_open : state.connections.size
  $("connections-count").textContent = `(${grouped(open)})`
  const shownText = q
    ? `Showing ${grouped(shown.length)} of ${grouped(all.length)} matching (${grouped(open)} open).`
    : `Showing ${grouped(shown.length)} of ${grouped(open)}.`
  $("connections-shown").textContent = shownText
  $("connections-shown").hidden = shown.length === 0
  const empty = $("connections-empty")
  empty.hidden = shown.length > 0
  empty.textContent = q ? "No connection matches." : "No open connections."
}

// renderJobs shows one row per watched job backend: whether this node holds
// its lease, how far behind it reads, and what it could not map.
function renderJobs() {
  const jobs = list(state.jobs)
  $("jobs-section").hidden = jobs.length === 0
  $("jobs").replaceChildren(...jobs.map((j) => {
    const counts = Object.entries(j.events || {}).filter(([, n]) => num(n) > 0).map(([k, n]) => `${k} ${grouped(num(n))}`)
    const unmapped = list(j.unmapped_classes)
    return row({ backend: j.backend }, [
      cell("Backend", j.backend, "code"),
      cell("Watching", j.watching ? "this node" : "standby (another node holds the lease)"),
      cell("Lag", `${num(j.lag_seconds).toFixed(1)} s`, "n"),
      numCell("Events/min", j.events_per_minute),
      cell("Events", counts.join(", ") || "none yet"),
      cell("Unmapped classes", unmapped.length ? `${unmapped.join(", ")} (${grouped(num(j.unmapped))} ${num(j.unmapped) === 1 ? "event" : "events"} dropped)` : "none", unmapped.length ? "bad" : ""),
      cell("Last error", j.last_error || "none", j.last_error ? "detail bad" : "detail"),
    ])
  }))
}

function renderStreams() {
  const q = filterText("streams-filter")
  let all = state.streams
  if (q) all = all.filter((s) => str(s.name).toLowerCase().includes(q))
  const { key, desc } = state.streamSort
  const byName = (a, b) => str(a.name).localeCompare(str(b.name))
  const sorted = all.slice().sort((a, b) => {
    const c = key === "subscribers" ? (num(a.subscribers) - num(b.subscribers)) || -byName(a, b) : byName(a, b)
    return desc ? -c : c
  })
  const shown = sorted.slice(0, MAX_STREAM_ROWS)
  $("streams").replaceChildren(...shown.map((s) => row({ stream: s.name, subscribers: num(s.subscribers) }, [
    cell("Stream", s.name, "name"),
    numCell("Subscribers", s.subscribers),
  ])))
  $("streams-count").textContent = `(${grouped(state.streams.length)})`
  $("streams-shown").textContent = q
    ? `Showing ${grouped(shown.length)} of ${grouped(all.length)} matching (${grouped(state.streams.length)} in all).`
    : `Showing ${grouped(shown.length)} of ${grouped(state.streams.length)}.`
  $("streams-shown").hidden = shown.length === 0
  const empty = $("streams-empty")
  empty.hidden = shown.length > 0
  empty.textContent = q ? "No stream matches." : "No streams with subscribers."
  for (const btn of document.querySelectorAll("button.sort")) {
    const active = btn.dataset.sort === key
    btn.closest("th").setAttribute("aria-sort", active ? (desc ? "descending" : "ascending") : "none")
  }
}

function renderPause() {
  const btn = $("broadcasts-pause")
  btn.setAttribute("aria-pressed", broadcasts.paused ? "true" : "false")
  btn.textContent = broadcasts.paused
    ? (broadcasts.fresh ? `Resume (${grouped(broadcasts.fresh)} new)` : "Resume")
    : "Pause"
}

// ---- live state ----

function setLive(kind, text) {
  $("live").dataset.state = kind
  $("live-state").textContent = text
  document.body.dataset.live = kind === "live" ? "1" : "0"
}

function showAlert(text) {
  const a = $("alert")
  a.textContent = text
  a.hidden = !text
}

// ---- snapshot ----

let loading = false
let queued = null // events that arrived while a snapshot was loading
let again = null // a load asked for while one was running: null, or its reset flag

// loadSnapshot fetches api/status and applies it. With reset the recent
// lists are replaced too (on the first load and whenever events may have
// been missed); otherwise they stay as the events built them. Events that
// arrive meanwhile are held back and applied after the snapshot.
async function loadSnapshot(reset) {
  if (loading) {
    again = again || reset
    return
  }
  loading = true
  queued = []
  try {
    const res = await request("api/status", { headers: requestHeaders() })
    const date = Date.parse(res.headers.get("Date") || "")
    if (!Number.isNaN(date)) {
      const d = date - Date.now()
      skew = Math.abs(d) > 2000 ? d : 0 // the header has whole seconds
    }
    const snap = await res.json()
    applySnapshot(snap || {}, reset || !state.loaded)
    showAlert("")
  } catch (err) {
    showAlert(describe(err) + (state.loaded ? ` Showing what was loaded at ${lastLoad}.` : ""))
  } finally {
    const held = queued
    queued = null
    loading = false
    for (const [name, data] of held) applyEvent(name, data)
    render()
  }
  if (again != null) {
    const r = again
    again = null
    loadSnapshot(r)
  }
}

// ---- events ----

let source = null
let retryMs = RETRY_MIN_MS
let retryTimer = null

function openEvents() {
  clearTimeout(retryTimer)
  const es = new EventSource(apiURL("api/events"))
  source = es
  es.onopen = () => {
    if (source !== es) return
    retryMs = RETRY_MIN_MS
    setLive("live", "live")
    // Events may have been missed before the stream (re)opened.
    loadSnapshot(true)
  }
  es.onerror = () => {
    if (source !== es) return
    if (es.readyState === EventSource.CLOSED) {
      // The server answered with an error; EventSource gives up, so retry here.
      es.close()
      setLive("offline", `offline, retrying in ${Math.round(retryMs / 1000)} s`)
      retryTimer = setTimeout(openEvents, retryMs)
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS)
      if (!state.loaded) loadSnapshot(true)
    } else {
      setLive("reconnecting", "reconnecting…")
    }
  }
  for (const name of EVENTS) {
    es.addEventListener(name, (ev) => {
      if (source !== es) return
      let data
      try {
        data = JSON.parse(ev.data)
      } catch {
        return
      }
      if (!data || typeof data !== "object") return
      if (queued) queued.push([name, data])
      else applyEvent(name, data)
    })
  }
}

// ---- controls ----

$("log-level").addEventListener("change", async (e) => {
  const sel = e.target
  const level = sel.value
  const msg = $("log-level-msg")
  levelPending = true
  sel.disabled = true
  msg.classList.remove("error")
  msg.textContent = "saving…"
  try {
    const res = await request("loglevel", {
      method: "PUT",
      headers: requestHeaders({ "Content-Type": "text/plain; charset=utf-8" }),
      body: level,
    })
    const body = await res.json().catch(() => ({}))
    state.logLevel = body && body.level ? str(body.level) : level
    msg.textContent = "saved"
  } catch (err) {
    msg.classList.add("error")
    msg.textContent = "not changed: " + describe(err)
  } finally {
    levelPending = false
    sel.disabled = false
    dirty.header = true
    render()
  }
})

$("broadcasts-pause").addEventListener("click", () => {
  broadcasts.paused = !broadcasts.paused
  render()
})

for (const btn of document.querySelectorAll("button.sort")) {
  btn.addEventListener("click", () => {
    const s = state.streamSort
    if (s.key === btn.dataset.sort) s.desc = !s.desc
    else {
      s.key = btn.dataset.sort
      s.desc = s.key === "subscribers"
    }
    dirty.streams = true
    render()
  })
}

for (const [input, part] of [["connections-filter", "connections"], ["streams-filter", "streams"]]) {
  $(input).addEventListener("input", () => {
    dirty[part] = true
    connectionsDrawn = 0 // typing is not throttled like events
    scheduleRender()
  })
}

// ---- start ----

setLive("connecting", "connecting…")
openEvents()
setTimeout(() => {
  if (!state.loaded && !loading) loadSnapshot(true)
}, FIRST_LOAD_DELAY_MS)
setInterval(() => {
  if (document.hidden) return
  // While the stream is down, the snapshot is the only source: take its lists too.
  loadSnapshot(document.body.dataset.live !== "1")
}, REFRESH_MS)
setInterval(renderUptime, 1000)
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) loadSnapshot(document.body.dataset.live !== "1")
})
