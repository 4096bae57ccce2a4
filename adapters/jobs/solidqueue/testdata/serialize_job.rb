# Prints the JSON Solid Queue stores in solid_queue_jobs.arguments for one
# job: ActiveJob::Base#serialize (Job.attributes_from_active_job), dumped
# by the model's `serialize :arguments, coder: JSON`. Run with Debian's
# /usr/bin/ruby (ruby-activejob, ruby-globalid).
require "json"
require "globalid"
require "active_job"

GlobalID.app = "shop"

# A stand-in for an Active Record model: what ActiveJob needs to pass it
# by GlobalID.
class User
  include GlobalID::Identification
  attr_reader :id

  def initialize(id)
    @id = id
  end

  def self.find(id)
    new(id)
  end
end

class ExportJob < ActiveJob::Base
  queue_as :exports
end

job = ExportJob.new(User.new(42), 7, "csv", { id: 3, "format" => "wide" }, 1.5, nil, [true])
job.job_id = ARGV.fetch(0)
puts JSON.dump(job.serialize)
