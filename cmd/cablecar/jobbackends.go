package main

// jobBackends lists the job backends cablecar can watch, in the order they
// start.
func jobBackends(cfg config) []jobBackend {
	return []jobBackend{}
}
