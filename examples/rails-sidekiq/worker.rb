# A minimal Rails-style app with Sidekiq jobs that report progress over
# Action Cable. It uses the real gems (Debian: ruby-actioncable 6.1,
# ruby-sidekiq 6.4, ruby-globalid) without a full Rails app; in Rails the
# first block is config/cable.yml and GlobalID.app is set for you.
#
#   REDIS_URL=redis://127.0.0.1:6379/0 sidekiq -r ./worker.rb -c 1
#
# cablecar, next to it:
#
#   CABLECAR_REDIS_URL=$REDIS_URL CABLECAR_CHANNEL_PREFIX=myapp_production \
#   CABLECAR_GID_APP=myapp \
#   CABLECAR_ROUTES='DocumentChannel={channel}:{gid:Document:params.id}' ...
require "base64" # globalid 0.6 uses Base64 without requiring it
require "logger"
require "action_cable"
require "global_id"
require "sidekiq"
require "active_support/all" # as Rails loads it

# Debian's redis gem 4.8 warns about calls that Sidekiq 6.4 makes.
Redis.silence_deprecations = true

# config/cable.yml:
#   production:
#     adapter: redis
#     url: <%= ENV["REDIS_URL"] %>
#     channel_prefix: myapp_production
ActionCable.server.config.cable = {
  adapter: "redis",
  url: ENV.fetch("REDIS_URL", "redis://127.0.0.1:6379/0"),
  channel_prefix: "myapp_production",
}.with_indifferent_access
ActionCable.server.config.logger = Logger.new($stdout, level: Logger::INFO)
GlobalID.app = "myapp"

# The model. In Rails this is an ActiveRecord model, which includes
# GlobalID::Identification already.
class Document
  include GlobalID::Identification

  class Unreadable < StandardError; end

  attr_reader :id

  def self.find(id) = new(id)

  def initialize(id)
    @id = id
  end
end

# The channel exists only for its name: cablecar serves the subscriptions,
# with the route DocumentChannel={channel}:{gid:Document:params.id}, which is
# what `stream_for document` would subscribe to.
class DocumentChannel < ActionCable::Channel::Base
  def subscribed
    stream_for Document.find(params[:id])
  end
end

class ProcessDocumentJob
  include Sidekiq::Job

  def perform(id)
    document = Document.find(id)
    DocumentChannel.broadcast_to(document, status: "processing")
    pages = work(document)
    DocumentChannel.broadcast_to(document, status: "complete", pages: pages)
  end

  private

  # Stands in for the real work (OCR, thumbnails, …).
  def work(document)
    sleep 0.2
    3
  end
end

# ProcessDocumentJob when the work raises partway: the page has seen
# "processing" and hears nothing more. Sidekiq records the error and
# schedules a retry, but nobody tells the browser.
class CrashingDocumentJob < ProcessDocumentJob
  private

  def work(document)
    sleep 0.1
    raise Document::Unreadable, "page 2 of document #{document.id} is unreadable"
  end
end

# The remedy, with the same failing work: rescue, tell the page, and
# re-raise.
class SafeDocumentJob < CrashingDocumentJob
  def perform(id)
    document = Document.find(id)
    DocumentChannel.broadcast_to(document, status: "processing")
    pages = work(document)
    DocumentChannel.broadcast_to(document, status: "complete", pages: pages)
  rescue => e
    DocumentChannel.broadcast_to(document, status: "failed", error: e.message) if document
    raise # so that Sidekiq still records the error and retries the job
  end
end
