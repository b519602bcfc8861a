"""The peer servers flexilib is measured against, serving the same bytes."""
