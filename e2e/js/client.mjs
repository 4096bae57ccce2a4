// client.mjs drives the real @rails/actioncable client against a cable
// server and prints what happened, one JSON object per line on stdout.
// Go end-to-end tests run it through the e2e/jsclient package.
//
// Input (environment):
//   CABLE_URL      ws:// or wss:// URL of the cable, query string included (required)
//   SUBSCRIPTIONS  JSON array; each item goes to consumer.subscriptions.create (default [])
//   DURATION_MS    run this long, then consumer.disconnect() and exit (default 5000)
//   ORIGIN         Origin header of the WebSocket handshake (default: none)
//   PERFORM        JSON {"index":0,"action":"speak","data":{...}} or an array of
//                  them; each is performed once, on the first "connected" of
//                  that subscription
//   EXIT_AFTER     JSON {"event":"received","count":N}: finish as soon as N
//                  events of that kind were printed
//   CABLE_DEBUG    "1" turns on the Action Cable logger (written to stderr)
//
// Output: {"t":<ms since start>,"event":<kind>,...}. Kinds: ws_open,
// ws_close, frame_in, frame_out, connected, disconnected, rejected,
// received, error, done. "done" is always the last line; the process then
// exits with status 0. Problems are reported as "error" lines; "fatal":true
// marks those that stopped the driver from doing its job.

import { performance } from "node:perf_hooks"
import { WebSocket as NodeWebSocket } from "ws"

const started = performance.now()
const counts = new Map()
let exitAfter = null
let finishing = false // finish() has begun
let finished = false // "done" was printed; nothing more is
let onExitAfter = () => {}

function emit(event, fields = {}) {
  if (finished && event !== "done") return
  const line = JSON.stringify({ t: Math.round(performance.now() - started), event, ...fields })
  process.stdout.write(line + "\n")
  const n = (counts.get(event) || 0) + 1
  counts.set(event, n)
  if (exitAfter && event === exitAfter.event && n === exitAfter.count) onExitAfter()
}

function describe(err) {
  return err instanceof Error ? err.message : String(err)
}

function parseJSONEnv(name, fallback) {
  const raw = process.env[name]
  if (raw === undefined || raw === "") return fallback
  try {
    return JSON.parse(raw)
  } catch (err) {
    throw new Error(`${name} is not valid JSON: ${describe(err)}`)
  }
}

function readConfig() {
  const url = process.env.CABLE_URL || ""
  if (!/^wss?:\/\//i.test(url)) throw new Error(`CABLE_URL must be a ws:// or wss:// URL, got ${JSON.stringify(url)}`)

  const subscriptions = parseJSONEnv("SUBSCRIPTIONS", [])
  if (!Array.isArray(subscriptions)) throw new Error("SUBSCRIPTIONS must be a JSON array")

  const duration = Number(process.env.DURATION_MS || 5000)
  if (!Number.isFinite(duration) || duration < 0) throw new Error(`DURATION_MS must be a non-negative number, got ${process.env.DURATION_MS}`)

  const perform = [].concat(parseJSONEnv("PERFORM", []))
  for (const p of perform) {
    const dataOK = p && (p.data === undefined || (typeof p.data === "object" && p.data !== null && !Array.isArray(p.data)))
    if (!p || typeof p.action !== "string" || !Number.isInteger(p.index ?? 0) || !dataOK) {
      throw new Error(`PERFORM entries need an integer "index", a string "action" and an object "data": ${JSON.stringify(p)}`)
    }
  }

  const after = parseJSONEnv("EXIT_AFTER", null)
  if (after !== null && (typeof after.event !== "string" || !Number.isInteger(after.count) || after.count < 1)) {
    throw new Error(`EXIT_AFTER must look like {"event":"received","count":1}, got ${JSON.stringify(after)}`)
  }

  return { url, subscriptions, duration, perform, after, origin: process.env.ORIGIN || "" }
}

// TracingWebSocket is the ws client with every frame and state change
// reported. Listeners added here run before the ones Action Cable installs
// later, so a frame_in line always precedes what the client made of it.
function tracingWebSocket(origin) {
  let sockets = 0
  return class TracingWebSocket extends NodeWebSocket {
    constructor(url, protocols) {
      super(url, protocols, origin ? { origin } : {})
      const socket = ++sockets
      this.socketNumber = socket
      this.on("open", () => emit("ws_open", { socket, protocol: this.protocol }))
      this.on("message", (data, isBinary) => {
        const fields = { socket, data: data.toString() }
        if (isBinary) fields.binary = true
        emit("frame_in", fields)
      })
      this.on("error", (err) => emit("error", { socket, message: describe(err) }))
      this.addEventListener("close", (ev) => {
        emit("ws_close", { socket, code: ev.code, reason: ev.reason, wasClean: ev.wasClean })
      })
    }

    send(data, ...rest) {
      emit("frame_out", { socket: this.socketNumber, data: String(data) })
      return super.send(data, ...rest)
    }
  }
}

// installBrowserGlobals gives the client the little of a browser it touches:
// window-level add/removeEventListener (visibilitychange), document and a
// WebSocket constructor.
function installBrowserGlobals(WebSocketClass) {
  const windowEvents = new EventTarget()
  globalThis.addEventListener = (...args) => windowEvents.addEventListener(...args)
  globalThis.removeEventListener = (...args) => windowEvents.removeEventListener(...args)
  if (typeof globalThis.document === "undefined") {
    const documentEvents = new EventTarget()
    globalThis.document = {
      visibilityState: "visible",
      hidden: false,
      head: { querySelector: () => null },
      addEventListener: (...args) => documentEvents.addEventListener(...args),
      removeEventListener: (...args) => documentEvents.removeEventListener(...args),
    }
  }
  globalThis.WebSocket = WebSocketClass
}

async function main() {
  let config
  try {
    config = readConfig()
  } catch (err) {
    emit("error", { message: describe(err), fatal: true })
    emit("done", { reason: "fatal" })
    return
  }

  const WebSocketClass = tracingWebSocket(config.origin)
  installBrowserGlobals(WebSocketClass)
  // Imported only now: the bundle reads the WebSocket global when it loads.
  const { default: ActionCable } = await import("@rails/actioncable")
  ActionCable.adapters.WebSocket = WebSocketClass
  ActionCable.adapters.logger = { log: (...args) => console.error(...args) }
  ActionCable.logger.enabled = process.env.CABLE_DEBUG === "1"

  const consumer = ActionCable.createConsumer(config.url)
  let durationTimer = null

  const finish = (reason) => {
    if (finishing) return
    finishing = true
    clearTimeout(durationTimer)
    const socket = consumer.connection.webSocket
    const closed = new Promise((resolve) => {
      if (!socket || socket.readyState === NodeWebSocket.CLOSED) return resolve()
      socket.once("close", resolve)
      // A server that never answers our close frame must not hold us up.
      setTimeout(() => { socket.terminate(); resolve() }, 1000).unref()
    })
    try {
      consumer.disconnect()
      // disconnect() leaves a socket that is still connecting alone.
      if (socket && socket.readyState === NodeWebSocket.CONNECTING) socket.terminate()
    } catch (err) {
      emit("error", { message: `disconnect: ${describe(err)}` })
    }
    closed.then(() => {
      // Let the close handlers that run after ours print their lines.
      setImmediate(() => {
        emit("done", { reason })
        finished = true
        process.stdout.write("", () => process.exit(0))
      })
    })
  }

  exitAfter = config.after
  onExitAfter = () => finish("exit_after")
  process.on("uncaughtException", (err) => {
    emit("error", { message: describe(err), fatal: true })
    finish("fatal")
  })

  config.subscriptions.forEach((params, index) => {
    const pending = config.perform.filter((p) => (p.index ?? 0) === index)
    consumer.subscriptions.create(params, {
      connected({ reconnected } = {}) {
        emit("connected", { index, identifier: this.identifier, reconnected: Boolean(reconnected) })
        while (pending.length > 0) {
          const p = pending.shift()
          this.perform(p.action, structuredClone(p.data ?? {}))
        }
      },
      disconnected({ willAttemptReconnect } = {}) {
        emit("disconnected", { index, identifier: this.identifier, willAttemptReconnect: Boolean(willAttemptReconnect) })
      },
      rejected() {
        emit("rejected", { index, identifier: this.identifier })
      },
      received(data) {
        emit("received", { index, identifier: this.identifier, data })
      },
    })
  })
  consumer.connect()

  if (!finishing) durationTimer = setTimeout(() => finish("duration"), config.duration)
}

main().catch((err) => {
  emit("error", { message: describe(err), fatal: true })
  emit("done", { reason: "fatal" })
  process.exit(0)
})
