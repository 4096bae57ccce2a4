# Subscribes to each broadcasting named in ARGV through Action Cable's
# postgresql adapter (postgres_app.rb), as a Rails Action Cable server
# does for its clients' streams. It prints "subscribed NAME" once the
# adapter has LISTENed for NAME, then "received NAME PAYLOAD" for each
# message, and exits after EXPECT messages (or 20 s).
#
#   DATABASE_URL=postgres://… EXPECT=2 ruby postgres_listen.rb chat:lobby
require_relative "postgres_app"

expected = Integer(ENV.fetch("EXPECT"))
events = Queue.new
pubsub = ActionCable.server.pubsub
ARGV.each do |name|
  pubsub.subscribe(name, ->(message) { events << "received #{name} #{message}" }, -> { events << "subscribed #{name}" })
end

received = 0
Thread.new do
  sleep 20
  warn "timed out waiting for #{expected} messages"
  exit!(2)
end
while received < expected
  event = events.pop
  puts event
  received += 1 if event.start_with?("received ")
end
pubsub.shutdown
