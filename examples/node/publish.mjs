// Publishes what DocumentChannel.broadcast_to(document, message) publishes in
// Rails, from Node with the `redis` package, for cablecar.
//
//   npm ci
//   REDIS_URL=redis://127.0.0.1:6379/0 node publish.mjs 'a b/c' '{"status":"complete"}'
//
// It prints the Redis channel and how many subscribers (cablecar processes)
// got the message.
import { pathToFileURL } from "node:url"
import { createClient } from "redis"

const channelPrefix = process.env.CHANNEL_PREFIX ?? "myapp_production" // cable.yml channel_prefix
const gidApp = process.env.GID_APP ?? "myapp" // GlobalID.app

// Ruby's CGI.escape: keeps letters, digits and -_.~, turns space into "+",
// and percent-encodes every other UTF-8 byte with upper-case hex.
// (encodeURIComponent alone would keep !'()* and write space as %20.)
function cgiEscape(s) {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase())
    .replace(/%20/g, "+")
}

// GlobalID#to_gid_param: URL-safe Base64, without padding, of gid://<app>/<model>/<id>.
export function gidParam(model, id) {
  return Buffer.from(`gid://${gidApp}/${model}/${cgiEscape(String(id))}`).toString("base64url")
}

export async function broadcastToDocument(client, id, message) {
  // DocumentChannel.broadcasting_for(document) is "document:" + the gid param.
  const channel = `${channelPrefix}:document:${gidParam("Document", id)}`
  return [channel, await client.publish(channel, JSON.stringify(message))]
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [id, json] = process.argv.slice(2)
  if (id === undefined || json === undefined) {
    console.error("usage: node publish.mjs DOCUMENT_ID JSON")
    process.exit(2)
  }
  const client = createClient({
    url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379/0",
    socket: { reconnectStrategy: false }, // a script should fail, not retry forever
  })
  client.on("error", () => {}) // connect() rejects with the same error
  await client.connect()
  const [channel, receivers] = await broadcastToDocument(client, id, JSON.parse(json))
  console.log(channel, receivers)
  await client.close()
}
