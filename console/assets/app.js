// cablecar developer console: a hand-written Action Cable client (plain
// WebSocket, subprotocol actioncable-v1-json) that shows every frame.

const PROTOCOL = "actioncable-v1-json"
const RECONNECT_DELAY_MS = 3000
const MAX_FRAMES = 500

const $ = (id) => document.getElementById(id)
const meta = (name) => document.querySelector(`meta[name="${name}"]`).content

// The page's query string (e.g. ?token=…) is passed on to the cable.
const cableURL = (() => {
  const url = new URL(meta("action-cable-url"), location.href)
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:"
  if (!url.search) url.search = location.search
  return url.href
})()
const broadcastURL = meta("cablecar-broadcast-url")

// el builds an element; strings become text nodes, never HTML.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v
    else if (k === "text") node.textContent = v
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v)
    else node.setAttribute(k, v)
  }
  node.append(...children.filter((c) => c != null))
  return node
}

function clock(d = new Date()) {
  return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0")
}

// ---- connection ----

let socket = null
let welcomed = false
let wantConnected = true // false after the user disconnects or the server says reconnect:false
let lastDisconnect = null // the server's disconnect frame on this socket, if any
let reconnectTimer = null

function setStatus(state, text) {
  $("status").dataset.state = state
  $("status-text").textContent = text
  $("connect").textContent = socket ? "Disconnect" : "Connect"
}

function connect() {
  clearTimeout(reconnectTimer)
  wantConnected = true
  lastDisconnect = null
  welcomed = false
  const ws = new WebSocket(cableURL, [PROTOCOL])
  socket = ws
  setStatus("connecting", `connecting to ${cableURL}…`)
  ws.onopen = () => {
    if (ws.protocol !== PROTOCOL) {
      setStatus("connecting", `open, but the server chose subprotocol "${ws.protocol}"; waiting for welcome`)
    } else {
      setStatus("connecting", "open, waiting for welcome")
    }
  }
  ws.onmessage = (ev) => receive(String(ev.data))
  ws.onclose = (ev) => {
    if (socket !== ws) return
    socket = null
    welcomed = false
    for (const sub of subscriptions.values()) if (sub.state === "confirmed") setSubState(sub, "pending")
    let why = `close ${ev.code}${ev.reason ? " " + ev.reason : ""}`
    if (lastDisconnect) {
      why = `reason: ${lastDisconnect.reason ?? "none"}, ${why}`
      // Like @rails/actioncable: a false or missing "reconnect" means stop.
      if (lastDisconnect.reconnect !== true) wantConnected = false
    }
    if (!wantConnected) {
      setStatus("disconnected", `disconnected (${why}); not reconnecting`)
      return
    }
    setStatus("disconnected", `disconnected (${why}); reconnecting in ${RECONNECT_DELAY_MS / 1000} s`)
    reconnectTimer = setTimeout(connect, RECONNECT_DELAY_MS)
  }
}

function disconnect() {
  wantConnected = false
  clearTimeout(reconnectTimer)
  if (socket) socket.close(1000)
  else setStatus("disconnected", "disconnected")
}

function send(command) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return false
  const raw = JSON.stringify(command)
  socket.send(raw)
  logFrame("out", raw)
  return true
}

function receive(raw) {
  logFrame("in", raw)
  let msg
  try {
    msg = JSON.parse(raw)
  } catch {
    return
  }
  if (msg === null || typeof msg !== "object") return
  const sub = subscriptions.get(msg.identifier)
  switch (msg.type) {
    case "welcome":
      welcomed = true
      setStatus("connected", `connected to ${cableURL}`)
      for (const s of subscriptions.values()) if (s.state !== "rejected") subscribe(s)
      break
    case "disconnect":
      lastDisconnect = { reason: msg.reason, reconnect: msg.reconnect }
      break
    case "confirm_subscription":
      if (sub) setSubState(sub, "confirmed")
      break
    case "reject_subscription":
      if (sub) setSubState(sub, "rejected")
      break
    case undefined:
      if (sub && "message" in msg) {
        sub.count++
        sub.countNode.textContent = `${sub.count} msg`
      }
      break
  }
}

$("connect").addEventListener("click", () => (socket ? disconnect() : connect()))

// ---- subscriptions ----

const subscriptions = new Map() // raw identifier → {identifier, state, count, node, stateNode, countNode}

function addSubscription(identifier) {
  let sub = subscriptions.get(identifier)
  if (!sub) {
    const stateNode = el("span", { class: "badge" })
    const countNode = el("span", { class: "count", text: "0 msg" })
    const node = el("li", {},
      el("code", { class: "identifier", text: identifier }),
      stateNode, countNode,
      el("button", { type: "button", "aria-label": `Unsubscribe from ${identifier}`, onclick: () => unsubscribe(identifier) }, "Unsubscribe"))
    sub = { identifier, state: "pending", count: 0, node, stateNode, countNode }
    subscriptions.set(identifier, sub)
    $("subscriptions").append(node)
    $("no-subs").hidden = true
  } else if (sub.state !== "rejected") {
    return // already subscribed; Rails would ignore the duplicate anyway
  }
  subscribe(sub)
}

function subscribe(sub) {
  setSubState(sub, "pending")
  if (welcomed) send({ command: "subscribe", identifier: sub.identifier })
}

function unsubscribe(identifier) {
  const sub = subscriptions.get(identifier)
  if (!sub) return
  if (sub.state !== "rejected") send({ command: "unsubscribe", identifier })
  subscriptions.delete(identifier)
  sub.node.remove()
  $("no-subs").hidden = subscriptions.size > 0
}

function setSubState(sub, state) {
  sub.state = state
  sub.stateNode.textContent = state
  sub.stateNode.dataset.state = state
}

$("subscribe-form").addEventListener("submit", (ev) => {
  ev.preventDefault()
  const stream = $("subscribe-stream").value.trim()
  if (stream) addSubscription(JSON.stringify({ channel: "StreamChannel", stream }))
})

$("raw-form").addEventListener("submit", (ev) => {
  ev.preventDefault()
  const field = $("raw-identifier")
  const raw = field.value.trim()
  const error = jsonError(raw, (v) => v !== null && typeof v === "object" && !Array.isArray(v), "must be a JSON object")
  showError(field, $("raw-error"), error)
  if (!error) addSubscription(raw)
})

// ---- publish ----

// jsonError returns why text is not acceptable JSON, or "" if it is.
function jsonError(text, check = () => true, what = "") {
  try {
    return check(JSON.parse(text)) ? "" : what
  } catch (err) {
    return `Not valid JSON: ${err.message}`
  }
}

function showError(field, node, message) {
  node.textContent = message
  if (message) field.setAttribute("aria-invalid", "true")
  else field.removeAttribute("aria-invalid")
}

$("publish-data").addEventListener("input", () => showError($("publish-data"), $("publish-error"), ""))

$("publish-form").addEventListener("submit", async (ev) => {
  ev.preventDefault()
  const stream = $("publish-stream").value.trim()
  const data = $("publish-data").value.trim()
  const error = jsonError(data)
  showError($("publish-data"), $("publish-error"), error)
  if (error || !stream) {
    $("publish-result").replaceChildren()
    return
  }
  // data is spliced in as typed, so the subscribers get exactly these bytes.
  const body = `{"stream":${JSON.stringify(stream)},"data":${data}}`
  const result = $("publish-result")
  result.replaceChildren(el("span", { text: "publishing…" }))
  const started = performance.now()
  try {
    const res = await fetch(broadcastURL, { method: "POST", headers: { "Content-Type": "application/json" }, body })
    const text = await res.text()
    const ms = Math.round(performance.now() - started)
    result.dataset.ok = String(res.ok)
    result.replaceChildren(
      el("strong", { text: `${res.status} ${res.statusText}` }),
      el("span", { class: "hint", text: ` ${ms} ms` }),
      el("pre", { text: text }))
  } catch (err) {
    result.dataset.ok = "false"
    result.replaceChildren(el("strong", { text: `request failed: ${err.message}` }))
  }
})

// ---- frame log ----

function frameKind(raw) {
  try {
    const msg = JSON.parse(raw)
    if (msg && typeof msg === "object") return msg.type || msg.command || ("message" in msg ? "message" : "other")
  } catch {
    // not JSON; shown as it is
  }
  return "invalid"
}

function logFrame(direction, raw) {
  const kind = frameKind(raw)
  const pretty = el("details", { class: "pretty" }, el("summary", { text: "pretty" }))
  // Filled on first open: most frames are never looked at.
  pretty.addEventListener("toggle", () => {
    pretty.append(el("pre", { text: JSON.stringify(JSON.parse(raw), null, 2) }))
  }, { once: true })
  const entry = el("li", { class: `frame ${direction} kind-${kind}` },
    el("span", { class: "time", text: clock() }),
    el("span", { class: "dir", text: direction === "in" ? "↓ in" : "↑ out", "aria-label": direction === "in" ? "received" : "sent" }),
    el("span", { class: "badge", text: kind }),
    el("code", { class: "raw", text: raw }),
    kind === "invalid" ? null : pretty)
  const list = $("frames")
  list.prepend(entry)
  while (list.children.length > MAX_FRAMES) list.lastElementChild.remove()
}

$("show-pings").addEventListener("change", (ev) => {
  $("frames").classList.toggle("hide-pings", !ev.target.checked)
})
$("clear-log").addEventListener("click", () => $("frames").replaceChildren())

connect()
