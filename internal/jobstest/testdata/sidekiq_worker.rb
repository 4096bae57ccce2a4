# Jobs for the real Sidekiq that internal/jobstest starts (sidekiq -r this
# file). The enqueue script requires it too, for the ActiveJob classes.
require "sidekiq"
require "json"

# Move due retries into their queues about every second, and start doing
# so within a few seconds of boot (the default waits 10 to 15 s first).
Sidekiq.configure_server do |config|
  config.options[:poll_interval_average] = 1
end

# Raised by FailJob, so that tests can expect its exact name.
class CablecarTestError < StandardError; end

# FailJob raises every time: one retry, then the dead set.
class FailJob
  include Sidekiq::Worker
  sidekiq_options retry: 1

  def perform(*_args)
    raise CablecarTestError, "failed on purpose"
  end
end

# SleepJob sleeps for its first argument's seconds, then returns: long
# enough to be listed at a heartbeat (every 5 s in Sidekiq 6), or to be
# killed mid-job.
class SleepJob
  include Sidekiq::Worker
  sidekiq_options retry: false

  def perform(seconds, *_rest)
    sleep seconds.to_f
  end
end

begin
  require "active_job"
  require "global_id"
rescue LoadError
  # ruby-activejob is missing: the Go helper reports it when a test asks
  # for an ActiveJob job.
else
  GlobalID.app = "cablecar-test"
  ActiveJob::Base.queue_adapter = :sidekiq
  ActiveJob::Base.logger = Logger.new(nil)

  # Document is a record that GlobalID can name and find, without a
  # database.
  class Document
    include GlobalID::Identification
    attr_reader :id

    def initialize(id)
      @id = id
    end

    def self.find(id)
      new(id)
    end
  end

  # SleepActiveJob is SleepJob through ActiveJob: its first argument is a
  # Document (a GlobalID on the wire), the second the seconds to sleep.
  class SleepActiveJob < ActiveJob::Base
    queue_as :default

    def perform(_document, seconds, *_rest)
      sleep seconds.to_f
    end
  end
end
