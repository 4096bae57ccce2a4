# Broadcasts through Action Cable's postgresql adapter (postgres_app.rb).
# Each argument is one broadcast: "document:ID:JSON" for
# DocumentChannel.broadcast_to(Document.find(ID), JSON), or "stream:NAME:JSON"
# for ActionCable.server.broadcast(NAME, JSON), the JSON starting at the
# first ":{". It prints each broadcasting's name as Rails computes it.
#
#   DATABASE_URL=postgres://… ruby postgres_broadcast.rb 'document:123:{"status":"complete"}'
require_relative "postgres_app"

ARGV.each do |arg|
  kind, rest = arg.split(":", 2)
  case kind
  when "document"
    id, json = rest.split(":", 2)
    document = Document.find(id)
    DocumentChannel.broadcast_to(document, JSON.parse(json))
    puts DocumentChannel.broadcasting_for(document)
  when "stream"
    name, json = rest.split(/:(?=\{)/, 2)
    ActionCable.server.broadcast(name, JSON.parse(json))
    puts name
  else
    abort "unknown broadcast #{arg.inspect}"
  end
end
