"""Everything that serves users of the segments: CLI, lookups, Redis view, exports."""
