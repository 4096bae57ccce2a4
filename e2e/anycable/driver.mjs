// driver.mjs runs the real AnyCable JS client (@anycable/web, extended
// protocol actioncable-v1-ext-json) under Node against a cable and prints
// what happened, one JSON object per line on stdout, for the Go
// end-to-end tests (e2e/anycable_history_test.go).
//
// Input (environment):
//   CABLE_URL     ws:// URL of the cable, query string included (required)
//   CHANNEL       channel name to subscribe to (required)
//   PARAMS        JSON params of the subscription (default {})
//   EXIT_AFTER    finish once this many messages were received (required)
//   DURATION_MS   give up after this long (default 60000)
//
// Output: {"t":<ms>,"event":<kind>,...}. Kinds: connect (reconnect,
// restored), subscribed (the channel is confirmed), disconnect, message (data, meta: stream/epoch/offset), info
// (type: history_received, history_not_found, …), error, done.

import { performance } from "node:perf_hooks"
import { WebSocket } from "ws"
import { createCable } from "@anycable/web"

const started = performance.now()
const emit = (event, fields = {}) =>
  process.stdout.write(JSON.stringify({ t: Math.round(performance.now() - started), event, ...fields }) + "\n")

const url = process.env.CABLE_URL
const channelName = process.env.CHANNEL
const params = JSON.parse(process.env.PARAMS || "{}")
const exitAfter = Number(process.env.EXIT_AFTER || 0)
const duration = Number(process.env.DURATION_MS || 60000)
if (!url || !channelName || !exitAfter) {
  emit("error", { fatal: true, message: "CABLE_URL, CHANNEL and EXIT_AFTER are required" })
  emit("done")
  process.exit(0)
}

const cable = createCable(url, {
  protocol: "actioncable-v1-ext-json",
  websocketImplementation: WebSocket,
  logLevel: process.env.CABLE_DEBUG === "1" ? "debug" : "error",
})

cable.on("connect", (ev) => emit("connect", { reconnect: ev.reconnect, restored: ev.restored }))
cable.on("disconnect", (ev) => emit("disconnect", { reason: ev && ev.reason }))
cable.on("error", (err) => emit("error", { message: String(err) }))

let received = 0
let finished = false
function finish(why) {
  if (finished) return
  finished = true
  emit("finish", { why, received })
  cable.disconnect()
  emit("done")
  process.exit(0)
}

const channel = cable.subscribeTo(channelName, params)
channel.on("message", (data, meta) => {
  received++
  emit("message", { data, meta: meta || null })
  if (received === exitAfter) finish("received")
})
channel.on("info", (info) => emit("info", { type: info.type }))
channel.on("connect", (ev) => emit("subscribed", { reconnect: ev.reconnect, restored: ev.restored }))
setTimeout(() => finish("timeout"), duration)
