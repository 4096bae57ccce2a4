// status.mjs opens cablecar's live status page in headless Chromium (the
// system's Chromium, driven by playwright-core) and reports what a person
// would see, one JSON object per line on stdout. The Go test
// e2e/status_page_test.go runs it.
//
// Input (environment):
//   PAGE_URL        the admin listener's page (required)
//   USER_DATA_DIR   a fresh, empty Chromium profile directory (required)
//   SCREENSHOT      where to write a PNG once the broadcast row appeared (required)
//   STREAM          the stream whose broadcast row to wait for (required)
//   REJECTED        the channel whose rejection row to wait for (required)
//   CHROMIUM        the browser binary (default /usr/bin/chromium)
//   TIMEOUT_MS      how long to wait for each step (default 15000)
//
// Output: ready (the page is live: broadcast now), page (the rows found),
// screenshot, done (always last), and error / pageerror at any time.
import { emit, env, launch, run } from "./driver.mjs"

async function main() {
  const timeout = Number(env("TIMEOUT_MS", "15000"))
  const stream = env("STREAM")
  const rejected = env("REJECTED")
  const context = await launch({ width: 1280, height: 900 })
  try {
    const page = context.pages()[0] || (await context.newPage())
    page.on("pageerror", (err) => emit("pageerror", { message: String(err) }))
    await page.goto(env("PAGE_URL"))
    await page.waitForSelector('body[data-live="1"][data-loaded="1"]', { state: "attached", timeout })
    emit("ready")
    const row = `#broadcasts tr[data-stream="${stream}"]`
    let found = true
    try {
      await page.waitForSelector(row, { state: "attached", timeout })
      await page.waitForSelector(`#rejections tr[data-channel="${rejected}"]`, { state: "attached", timeout })
    } catch (err) {
      found = false
      emit("error", { message: err.message })
    }
    const state = await page.evaluate(([s, ch]) => {
      const b = document.querySelector(`#broadcasts tr[data-stream="${s}"]`)
      const r = document.querySelector(`#rejections tr[data-channel="${ch}"]`)
      return {
        delivered: b ? Number(b.dataset.delivered) : -1,
        bytes: b ? Number(b.dataset.bytes) : -1,
        broadcastText: b ? b.textContent : "",
        rejectionReason: r ? r.dataset.reason : "",
        brokerUp: document.querySelector("#broker-state")?.dataset.up ?? "",
      }
    }, [stream, rejected])
    emit("page", { found, ...state })
    const path = env("SCREENSHOT")
    await page.screenshot({ path, fullPage: true })
    emit("screenshot", { path })
  } finally {
    await context.close()
  }
}

run(main)
