# A real Action Cable server (Debian's ruby-actioncable 6.1.7.10 on Debian's
# puma) configured like the app cablecar stands in for in
# e2e/conformance_test.go: the Redis adapter with channel_prefix
# myapp_production, GlobalID.app "myapp", a Connection that wants a token
# and a DocumentChannel that does `stream_for document`, so its stream is
# what cablecar's route DocumentChannel={channel}:{gid:Document:params.id}
# resolves to.
#
#   REDIS_URL=redis://127.0.0.1:6379/0 ALLOWED_ORIGIN=http://app.example \
#   puma -b tcp://127.0.0.1:28080 cable_server.ru
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

class Document
  include GlobalID::Identification
  attr_reader :id
  def initialize(id) = @id = id
  def self.find(id) = new(id)
end

module ApplicationCable
  class Connection < ActionCable::Connection::Base
    identified_by :current_user

    # Any non-empty token is user 42 here: the test compares frames, not
    # authentication schemes (cablecar checks a JWT).
    def connect
      token = request.params["token"].to_s
      reject_unauthorized_connection if token.empty?
      self.current_user = User.find(42)
    end
  end
end

class DocumentChannel < ActionCable::Channel::Base
  def subscribed
    stream_for Document.find(params[:id])
  end

  # Channel code cablecar cannot run: an allowed difference in the test.
  def echo(data)
    transmit({ "echo" => data })
  end
end

ActionCable.server.config.cable = {
  adapter: "redis",
  url: ENV.fetch("REDIS_URL", "redis://127.0.0.1:6379/0"),
  channel_prefix: "myapp_production",
}.with_indifferent_access
ActionCable.server.config.connection_class = -> { ApplicationCable::Connection }
ActionCable.server.config.allowed_request_origins = [ENV.fetch("ALLOWED_ORIGIN", "http://app.example")]
ActionCable.server.config.logger = Logger.new($stdout, level: ENV.fetch("CABLE_LOG_LEVEL", "INFO"))

map "/cable" do
  run ActionCable.server
end
