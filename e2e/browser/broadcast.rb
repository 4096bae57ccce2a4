# Broadcasts a Turbo Stream to "lobby" with the real Action Cable (Debian's
# ruby-actioncable) through Redis, byte for byte what turbo-rails'
#   Turbo::StreamsChannel.broadcast_append_to("lobby", target: "messages",
#     partial: "messages/message", locals: { text: "Hello & welcome" })
# publishes: the rendered <turbo-stream> HTML as a JSON string.
#
#   REDIS_URL=redis://127.0.0.1:6379/0 ruby broadcast.rb
require "logger"
require "action_cable"
require "active_support/all" # as Rails loads it

ActionCable.server.config.cable = {
  adapter: "redis",
  url: ENV.fetch("REDIS_URL", "redis://127.0.0.1:6379/0"),
  channel_prefix: "myapp_production",
}.with_indifferent_access
ActionCable.server.config.logger = Logger.new($stderr, level: Logger::WARN)

ActionCable.server.broadcast("lobby", %(<turbo-stream action="append" target="messages"><template><p>Hello &amp; welcome</p></template></turbo-stream>))
