// driver.mjs is what the browser drivers (turbo.mjs, status.mjs) share:
// JSON-lines output, environment input, launching the system's Chromium
// with a closed-network profile, and the exit protocol ("done" last, exit 0).
import { chromium } from "playwright-core"

export function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + "\n")
}

export const env = (name, fallback) => {
  const v = process.env[name] || fallback
  if (v === undefined) throw new Error(`${name} is not set`)
  return v
}

// launch starts headless Chromium (USER_DATA_DIR, CHROMIUM) at the given
// viewport size. Background networking is off: this machine has no network
// beyond loopback, and the tests check the page requests nothing else.
export function launch(viewport) {
  return chromium.launchPersistentContext(env("USER_DATA_DIR"), {
    executablePath: env("CHROMIUM", "/usr/bin/chromium"),
    headless: true, // playwright-core adds --headless
    viewport,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--no-default-browser-check",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-default-apps",
      "--disable-domain-reliability",
      "--disable-client-side-phishing-detection",
      "--no-pings",
    ],
  })
}

// run runs main, reports a failure as a fatal error, then "done", and exits 0.
export function run(main) {
  main()
    .catch((err) => emit("error", { message: err instanceof Error ? err.message : String(err), fatal: true }))
    .finally(() => {
      emit("done")
      process.stdout.write("", () => process.exit(0))
    })
}
