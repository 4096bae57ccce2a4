# Disconnects every connection of User 42 the way a Rails app does:
#   ActionCable.server.remote_connections.where(current_user: user).disconnect
# with Debian's ruby-actioncable, through Redis. The connection class
# declares identified_by :current_user, as ApplicationCable::Connection does.
#
#   REDIS_URL=redis://127.0.0.1:6379/0 ruby remote_disconnect.rb 42
require "logger"
require "base64" # globalid 0.6 uses it without requiring it
require "action_cable"
require "active_support/all" # as Rails loads it
require "global_id"

GlobalID.app = "myapp"

class User
  include GlobalID::Identification
  attr_reader :id
  def initialize(id) = @id = id
  def self.find(id) = new(id)
end

module ApplicationCable
  class Connection < ActionCable::Connection::Base
    identified_by :current_user
  end
end

ActionCable.server.config.cable = {
  adapter: "redis",
  url: ENV.fetch("REDIS_URL", "redis://127.0.0.1:6379/0"),
  channel_prefix: "myapp_production",
}.with_indifferent_access
ActionCable.server.config.connection_class = -> { ApplicationCable::Connection }
ActionCable.server.config.logger = Logger.new($stderr, level: Logger::WARN)

ActionCable.server.remote_connections.where(current_user: User.new(Integer(ARGV.fetch(0)))).disconnect
