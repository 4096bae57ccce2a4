// turbo.mjs opens a page in headless Chromium (the system's Chromium,
// driven by playwright-core: no browser is downloaded) and reports what a
// person would see of a Turbo Streams page, one JSON object per line on
// stdout. The Go test e2e/interop_turbo_test.go runs it.
//
// Input (environment):
//   PAGE_URL        the page to open (required)
//   USER_DATA_DIR   a fresh, empty Chromium profile directory (required)
//   SCREENSHOT      where to write a PNG of the page once a message arrived (required)
//   CHROMIUM        the browser binary (default /usr/bin/chromium)
//   TIMEOUT_MS      how long to wait for each step (default 15000)
//
// Output: {"event":<kind>,...}, in this order:
//   ready      the signed <turbo-cable-stream-source> has its "connected"
//              attribute and the forged one was rejected: publish now
//   page       the state after the first <p> appeared in #messages (or the
//              timeout): messagesHTML, messagesText, paragraphs, connected
//              (the ids of the connected stream sources)
//   screenshot path
//   done       always last; the process then exits 0
// and at any time: console, pageerror, request (every HTTP request the page
// made), frame_in (every WebSocket frame the page received), error (fatal
// marks a failure that stopped the driver).
import { emit, env, launch, run } from "./driver.mjs"

async function main() {
  const pageURL = env("PAGE_URL")
  const timeout = Number(env("TIMEOUT_MS", "15000"))
  const context = await launch({ width: 800, height: 420 })
  try {
    const page = context.pages()[0] || (await context.newPage())
    page.on("console", (m) => emit("console", { type: m.type(), text: m.text() }))
    page.on("pageerror", (err) => emit("pageerror", { message: String(err) }))
    page.on("request", (r) => emit("request", { url: r.url() }))
    let rejected = false
    page.on("websocket", (ws) => {
      ws.on("framereceived", ({ payload }) => {
        const data = String(payload)
        if (data.includes('"type":"reject_subscription"')) rejected = true
        emit("frame_in", { url: ws.url(), data })
      })
    })

    await page.goto(pageURL)
    await page.waitForSelector("#lobby[connected]", { state: "attached", timeout })
    const deadline = Date.now() + timeout
    while (!rejected && Date.now() < deadline) await page.waitForTimeout(50)
    emit("ready", { rejected })

    let arrived = true
    try {
      await page.waitForSelector("#messages p", { state: "attached", timeout })
    } catch (err) {
      arrived = false
      emit("error", { message: `no <p> in #messages: ${err.message}` })
    }
    const state = await page.evaluate(() => ({
      messagesHTML: document.querySelector("#messages").innerHTML,
      messagesText: document.querySelector("#messages").textContent,
      paragraphs: document.querySelectorAll("#messages p").length,
      connected: [...document.querySelectorAll("turbo-cable-stream-source[connected]")].map((e) => e.id),
    }))
    emit("page", { arrived, ...state })
    const path = env("SCREENSHOT")
    await page.screenshot({ path })
    emit("screenshot", { path })
  } finally {
    await context.close()
  }
}

run(main)
