"""The recording core: sources to fragmented-MP4 segments, the SQLite index, recovery, retention, export."""
