"""What an event is, what configuration is, and what can go wrong."""
