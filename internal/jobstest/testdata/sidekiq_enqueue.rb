# Enqueues one job with the real Sidekiq client and prints its id.
#
#   ruby sidekiq_enqueue.rb sidekiq CLASS JSON_ARGS    # prints the jid
#   ruby sidekiq_enqueue.rb activejob CLASS JSON_ARGS  # prints ActiveJob's job_id
#
# Sidekiq reads the Redis URL from REDIS_URL. For ActiveJob, an argument
# {"document": N} becomes Document N, which ActiveJob sends as a GlobalID.
require_relative "sidekiq_worker"

kind, klass, json = ARGV
args = JSON.parse(json || "[]")
case kind
when "sidekiq"
  # perform_async applies the class's sidekiq_options (retry: 1), which a
  # push by class name would not.
  jid = if Object.const_defined?(klass)
    Object.const_get(klass).perform_async(*args)
  else
    Sidekiq::Client.push("class" => klass, "args" => args)
  end
  abort "push refused" unless jid
  puts jid
when "activejob"
  abort "ruby-activejob is not installed" unless defined?(ActiveJob)
  args = args.map { |a| a.is_a?(Hash) && a.key?("document") ? Document.new(a["document"]) : a }
  job = Object.const_get(klass).perform_later(*args)
  abort "perform_later refused" unless job
  puts job.job_id
else
  abort "unknown kind #{kind.inspect}"
end
