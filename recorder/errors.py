"""The recorder's exceptions.

    RecorderError
    ├── SourceError (ConnectionError)      a source could not be opened or broke off; retried
    │   ├── SourceStalled (TimeoutError)   no packet within the stall timeout; retried
    │   ├── VideoLoss                      an analog input lost its picture: the run ends, `video_loss`
    │   │                                  is raised (not `source_lost`) and the source waits for it
    │   └── TracksChanged                  a track came back (an analog channel's microphone): the run
    │                                      ends and the source is opened again at once, with it
    ├── StorageError (OSError)             writing or syncing a segment failed
    │   └── DiskFull                       no space even after retention ran
    ├── IndexError_ (RuntimeError)         the SQLite index is unusable
    └── ExportError (ValueError)           nothing to export, or a range that cannot be cut
"""
from __future__ import annotations


class RecorderError(Exception):
    """Base of every error the recorder raises on purpose."""


class SourceError(RecorderError, ConnectionError):
    """A source could not be opened, or its stream broke off."""


class SourceStalled(SourceError, TimeoutError):
    """A source delivered no packet within its stall timeout."""


class VideoLoss(SourceError):
    """An analog input lost its picture (no signal, no frames, device gone) during a run.

    The source has raised the `video_loss` alarm itself and waits for the picture when opened again,
    so the recorder reopens it at once and raises no `source_lost`.
    """


class TracksChanged(SourceError):
    """A source's tracks changed during a run: an analog channel recording pictures only has its
    microphone back. A run's tracks are fixed when it starts, so the recorder ends the run and opens
    the source again at once, without backoff and without `source_lost`; the source keeps the newly
    opened microphone through the `close` that ends the run and declares its track in the next.
    """


class StorageError(RecorderError, OSError):
    """Writing, syncing or deleting a segment failed."""


class DiskFull(StorageError):
    """The data disk has no room even after retention freed what it may."""


class IndexCorrupt(RecorderError, RuntimeError):
    """The SQLite index cannot be opened or read; the message says how to rebuild it."""


class ExportError(RecorderError, ValueError):
    """An export request that cannot be met (no recordings in the range, bad range)."""
