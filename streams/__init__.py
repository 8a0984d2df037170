"""The Faust app and its agents: read topics, call models/, write results."""
