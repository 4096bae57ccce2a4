# A minimal Rails-style app whose Action Cable uses the postgresql
# subscription adapter, as a Rails app with this config/cable.yml does:
#
#   production:
#     adapter: postgresql
#     channel_prefix: myapp_production
#
# It uses the real gems (Debian: ruby-actioncable and ruby-activerecord 6.1,
# ruby-pg, ruby-globalid) without a full Rails app: the adapter takes its
# connections from Active Record, connected here to DATABASE_URL.
require "base64" # globalid 0.6 uses Base64 without requiring it
require "json"
require "logger"
require "active_record"
require "action_cable"
require "global_id"
require "active_support/all"

$stdout.sync = true
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
