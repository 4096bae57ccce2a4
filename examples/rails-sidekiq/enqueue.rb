# Enqueues a job the way the app does, with the real Sidekiq client:
#
#   REDIS_URL=redis://127.0.0.1:6379/0 ruby enqueue.rb ProcessDocumentJob 123
require_relative "worker"

job, id = ARGV
abort "usage: ruby enqueue.rb JOB_CLASS DOCUMENT_ID" unless job && id
id = Integer(id, exception: false) || id # 123 as the integer a model id is
jid = Object.const_get(job).perform_async(id)
puts jid
