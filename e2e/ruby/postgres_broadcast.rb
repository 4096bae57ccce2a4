# Broadcasts through Action Cable's postgresql subscription adapter, as a
# Rails app with this config/cable.yml does:
#
#   production:
#     adapter: postgresql
#     channel_prefix: myapp_production
#
# It uses the real gems (Debian: ruby-actioncable and ruby-activerecord 6.1,
# ruby-pg, ruby-globalid) without a full Rails app: the adapter takes its
# connection from Active Record, connected to DATABASE_URL. Each argument is
# one broadcast, "document:ID:JSON" for DocumentChannel.broadcast_to(
# Document.find(ID), JSON) or "stream:NAME:JSON" for
# ActionCable.server.broadcast(NAME, JSON); NAME holds no ":" of its own
# beyond what the caller puts in, so the JSON is everything after the last
# field. The script prints each broadcasting's name as Rails computes it.
#
#   DATABASE_URL=postgres://… ruby postgres_broadcast.rb 'document:123:{"status":"complete"}'
require "base64" # globalid 0.6 uses Base64 without requiring it
require "json"
require "logger"
require "active_record"
require "action_cable"
require "global_id"
require "active_support/all"

ActiveRecord::Base.establish_connection(ENV.fetch("DATABASE_URL"))
ActionCable.server.config.cable = {
  adapter: "postgresql",
  channel_prefix: "myapp_production",
}.with_indifferent_access
ActionCable.server.config.logger = Logger.new($stderr, level: Logger::WARN)
GlobalID.app = "myapp"

# The model; in Rails an ActiveRecord model, which includes
# GlobalID::Identification already.
class Document
  include GlobalID::Identification

  attr_reader :id

  def self.find(id) = new(id)

  def initialize(id)
    @id = id
  end
end

# Exists for its name: cablecar serves the subscriptions.
class DocumentChannel < ActionCable::Channel::Base; end

ARGV.each do |arg|
  kind, rest = arg.split(":", 2)
  case kind
  when "document"
    id, json = rest.split(":", 2)
    document = Document.find(id)
    DocumentChannel.broadcast_to(document, JSON.parse(json))
    puts DocumentChannel.broadcasting_for(document)
  when "stream"
    name, json = rest.split(/:(?=\{)/, 2) # the JSON starts at the first ":{"
    ActionCable.server.broadcast(name, JSON.parse(json))
    puts name
  else
    abort "unknown broadcast #{arg.inspect}"
  end
end
