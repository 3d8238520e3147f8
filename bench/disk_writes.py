"""bench/disk_writes: the recorder's write pattern on a disk: syncs per second, extents per segment
(`filefrag`) and write amplification (bytes the kernel wrote to the device / bytes of recordings), at 16
and 64 channels. Needs root (it loop-mounts an ext4 image).

    ./dev bench disk_writes [--channels 16,64] [--media-s 300] [--segment-s 60] [--bitrate 1000000] [--no-reserve]

Every channel replays one pre-encoded clip (352x288, 25 fps, CBR at --bitrate) through its own Segmenter
with sync on, all channels interleaved packet by packet as a real recorder's threads would be, onto a fresh
ext4 filesystem on a loop device over an image file. The SQLite index is on the same filesystem, as on
the appliance. Time is simulated, so the figures are per second of recording, not of this run.

The recorder reserves each segment's blocks at creation (the last segment's size and an eighth more,
fallocate with KEEP_SIZE: the file's size and its O_APPEND writes are unchanged) and gives back what it did
not use when it closes; `--no-reserve` measures without (as it wrote before).

What it cannot see: the flash translation layer of an SD card or a USB stick (their own amplification),
and the disk's own cache; the loop device here sits on the VM's virtio disk.

"writer ms per channel-second": real time spent in the writers' `push` (writes and syncs included, on the
I/O thread the writer waits for) per second of recording per channel: what the write path costs a
recording thread.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import encode_clip, print_table  # noqa: E402
from base.clock import SimulatedClocks  # noqa: E402
from base.media import EncodedPacket  # noqa: E402
from recorder.faults import FaultBoard  # noqa: E402
from recorder.index import Index  # noqa: E402
from recorder.segmenter import Segmenter  # noqa: E402

FPS = 25
CLIP_S = 10


class SyncCounter:
    """Counts fsync and fdatasync calls of this process (the segment writer's and SQLite's own are
    separate: SQLite calls the C library directly, so only the recorder's are counted here)."""

    def __init__(self):
        self.count = 0
        self._fsync, self._fdatasync = os.fsync, os.fdatasync

    def __enter__(self):
        def counted(real):
            def call(fd):
                self.count += 1
                return real(fd)
            return call
        os.fsync, os.fdatasync = counted(self._fsync), counted(self._fdatasync)
        return self

    def __exit__(self, *exc):
        os.fsync, os.fdatasync = self._fsync, self._fdatasync


def device_counters(device: str) -> tuple[int, int]:
    """(write requests completed, bytes written) of a block device since it appeared."""
    fields = Path(f"/sys/class/block/{Path(device).name}/stat").read_text().split()
    return int(fields[4]), int(fields[6]) * 512


def extents(path: Path) -> int:
    out = subprocess.run(["filefrag", str(path)], capture_output=True, text=True, check=True).stdout
    match = re.search(r"(\d+) extents? found", out)
    return int(match.group(1)) if match else 0


def run(channels: int, *, media_s: int, segment_s: int, bitrate: int, folder: Path, reserve: bool) -> list:
    image, mount = folder / f"disk{channels}.img", folder / f"mnt{channels}"
    mount.mkdir()
    subprocess.run(["truncate", "-s", "8G", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-m", "0", "-T", "largefile", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    device = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(mount)], capture_output=True, text=True,
                            check=True).stdout.strip()
    try:
        info, packets = encode_clip(width=352, height=288, fps=FPS, seconds=CLIP_S, bitrate=bitrate,
                                    keyframe_interval_s=2.0)
        clocks = SimulatedClocks()
        index = Index(mount)
        writers = [Segmenter(channel=ch, stream="main", root=mount, index=index, clocks=clocks,
                             faults=FaultBoard(clocks=clocks), segment_seconds=segment_s,
                             stagger_fraction=(ch - 1) / channels, sync=True, reserve=reserve)
                   for ch in range(1, channels + 1)]
        subprocess.run(["sync"], check=True)
        requests0, bytes0 = device_counters(device)
        clip_ticks = len(packets) * 90_000 // FPS
        pushing_s = 0.0
        with SyncCounter() as syncs:
            for writer in writers:
                writer.start_run(info)
            for frame in range(media_s * FPS):
                loop, p = divmod(frame, len(packets))
                packet = packets[p]
                moved = EncodedPacket(packet.data, packet.pts + loop * clip_ticks, packet.dts + loop * clip_ticks,
                                      packet.keyframe)
                began = time.perf_counter()
                for writer in writers:
                    writer.push(moved)
                pushing_s += time.perf_counter() - began
                clocks.advance(1 / FPS)
            for writer in writers:
                writer.finish()
        index.close()
        subprocess.run(["sync"], check=True)
        requests1, bytes1 = device_counters(device)
        files = sorted(mount.glob("ch*/*/*.mp4"))
        payload = sum(f.stat().st_size for f in files)
        counts = [extents(f) for f in files]
        return [channels, len(files), round(syncs.count / media_s, 1), round((requests1 - requests0) / media_s, 1),
                round(payload / media_s / 1e6, 2), round((bytes1 - bytes0) / payload, 3),
                round(statistics.mean(counts), 2), max(counts), round(pushing_s / media_s / channels * 1e3, 2)]
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", default="16,64")
    parser.add_argument("--media-s", type=int, default=300)
    parser.add_argument("--segment-s", type=int, default=60)
    parser.add_argument("--bitrate", type=int, default=1_000_000)
    parser.add_argument("--no-reserve", action="store_true", help="segments reserve no blocks ahead (the old way)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/disk_writes needs root to loop-mount an ext4 image", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="nvr-bench-disk-") as folder:
        for channels in (int(c) for c in args.channels.split(",")):
            rows.append(run(channels, media_s=args.media_s, segment_s=args.segment_s, bitrate=args.bitrate,
                            folder=Path(folder), reserve=not args.no_reserve))
    print_table(f"Write pattern on ext4 (loop device), {args.media_s} s of recording per channel at "
                f"{args.bitrate / 1e6:g} Mbit/s, {args.segment_s} s segments"
                + (", no blocks reserved ahead" if args.no_reserve else ", blocks reserved ahead"),
                ["channels", "segments", "recorder syncs/s", "device writes/s", "recorded MB/s",
                 "write amplification", "extents/segment (mean)", "extents/segment (max)",
                 "writer ms per channel-second"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
