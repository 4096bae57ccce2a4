// Package jobstest starts real job workers for tests: a Sidekiq process from
// Debian's ruby-sidekiq, a BullMQ worker under Node, a Celery worker from
// Debian's python3-celery. Each helper stops its worker when the test ends
// and fails the test when the worker's software is missing.
package jobstest
