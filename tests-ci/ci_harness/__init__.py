"""Harness of the CI loop test: the real server, real runners, a real dnf repository, real git."""
