"""Loopback stand-ins for the outside world: the site's API and Discord, for tests and demos."""
