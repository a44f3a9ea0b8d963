"""Request and response bodies, apart from how things are stored."""
