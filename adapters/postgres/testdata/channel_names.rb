# Prints the PostgreSQL channel names Action Cable's postgresql adapter
# LISTENs and NOTIFYs on, for a table of stream names and channel prefixes.
#
# "rails_debian" comes from the installed adapter itself (Debian's
# ruby-actioncable): ChannelPrefix#channel_with_prefix, then
# PostgreSQL#channel_identifier, and "listen_sql" is the LISTEN statement it
# sends, quoted as ruby-pg quotes identifiers. "rails_main" applies the rule
# of rails/rails main after commit 5b41c8a214a (hash when the name is over 63
# bytes rather than 63 characters) with the same stdlib calls.
#
# Regenerate: /usr/bin/ruby adapters/postgres/testdata/channel_names.rb > adapters/postgres/testdata/channel_names.json
require "json"
require "logger"
require "openssl"
require "pg"
require "action_cable"
require "action_cable/subscription_adapter/postgresql"

Config = Struct.new(:cable)
Server = Struct.new(:config, :logger, :mutex, :event_loop)

def adapter_for(prefix)
  cable = prefix.nil? ? {} : { channel_prefix: prefix }
  ActionCable::SubscriptionAdapter::PostgreSQL.new(Server.new(Config.new(cable), Logger.new(nil), Mutex.new, nil))
end

# The adapter quotes with PG::Connection#escape_identifier, which needs a
# connection; the class method quote_ident applies the same rule without one.
def quote(name)
  PG::Connection.quote_ident(name)
end

streams = [
  "chat:room:lobby",
  "document:Z2lkOi8vY2FibGVjYXIvRG9jdW1lbnQvNDI",
  "a" * 63,
  "a" * 64,
  "b" * 46,  # with "myapp_production:" exactly 63 bytes
  "b" * 47,  # with "myapp_production:" 64 bytes
  "comments:Z2lkOi8vY2FibGVjYXIvRG9jdW1lbnQvNDI:thread:7:replies:page:1",
  "room:\"quoted\" name",
  "chat:über",
  "room:" + "é" * 29, # 63 bytes, 34 characters
  "room:" + "é" * 30, # 65 bytes, 35 characters: Rails releases and main differ
  "room:" + "é" * 59, # 123 bytes, 64 characters
  "x" * 200,
]
prefixes = [nil, "myapp_production"]

vectors = []
prefixes.each do |prefix|
  adapter = adapter_for(prefix)
  streams.each do |stream|
    full = adapter.send(:channel_with_prefix, stream)
    debian = adapter.send(:channel_identifier, full)
    main = full.bytesize > 63 ? OpenSSL::Digest::SHA1.hexdigest(full) : full
    vectors << {
      prefix: prefix,
      stream: stream,
      prefixed: full,
      rails_debian: debian,
      listen_sql: "LISTEN #{quote(debian)}",
      rails_main: main,
    }
  end
end

puts JSON.pretty_generate(
  command: "/usr/bin/ruby adapters/postgres/testdata/channel_names.rb",
  ruby: RUBY_VERSION,
  actioncable: ActionCable.gem_version.to_s,
  pg: PG::VERSION,
  vectors: vectors,
)
