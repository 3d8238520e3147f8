"""/etc/fstab read as hostile input: entries, escapes, bounds, sources found as udev names them, and the
systemd mount unit of a folder."""
from __future__ import annotations

from pathlib import Path

from hal.fstab import (MAX_ENTRIES, MAX_FSTAB_BYTES, MAX_LINE_CHARS, FstabEntry, entry_for, mount_unit, parse_fstab,
                       read_fstab, source_device)

IMAGE_FSTAB = """\
# The nvr appliance's filesystems
LABEL=nvr-root    /               ext4  ro,noatime                                          0 0
LABEL=nvr-config  /var/lib/nvr    ext4  nofail,noatime,commit=5,data=journal 0 2
LABEL=NVRBOOT     /boot/firmware  vfat  noauto,nofail,umask=0077,flush                      0 0
LABEL=nvr-data    /srv/nvr        ext4  nofail,noatime,commit=5,x-systemd.device-timeout=15s 0 2
LABEL=nvr-a /srv/diska ext4 nofail,noatime,commit=5,x-systemd.device-timeout=15s 0 0
"""


def test_the_images_fstab_gives_each_mount_point_its_source_type_and_options():
    entries = parse_fstab(IMAGE_FSTAB)
    assert [e.mount_point for e in entries] == ["/", "/var/lib/nvr", "/boot/firmware", "/srv/nvr", "/srv/diska"]
    assert entry_for(entries, "/srv/diska") == FstabEntry("LABEL=nvr-a", "/srv/diska", "ext4",
                                                          ("nofail", "noatime", "commit=5", "x-systemd.device-timeout=15s"))
    assert entry_for(entries, "/srv/diska/") is not None and entry_for(entries, "/srv/diskb") is None


def test_octal_escapes_are_undone_and_the_last_entry_for_a_folder_wins():
    entries = parse_fstab("/dev/sdb1 /mnt/bay\\0401 ext4 defaults\nUUID=1 /mnt/x ext4\nUUID=2 /mnt/x ext4 ro\n")
    assert entries[0].mount_point == "/mnt/bay 1" and entries[1].options == ("defaults",)
    assert entry_for(entries, Path("/mnt/x")).source == "UUID=2"


def test_comments_blank_short_relative_and_overlong_lines_are_skipped():
    text = "\n   \n# LABEL=x /a ext4\nLABEL=y\nLABEL=z relative ext4\n" + \
           f"LABEL=long /{'a' * MAX_LINE_CHARS} ext4\nLABEL=ok /ok ext4 defaults 0 0\n"
    assert [e.source for e in parse_fstab(text)] == ["LABEL=ok"]


def test_a_huge_fstab_costs_only_its_first_bytes_and_entries(tmp_path):
    line = "LABEL=x /mnt/x ext4 defaults 0 0\n"
    entries = parse_fstab(line * (MAX_FSTAB_BYTES // len(line) + 100))
    assert len(entries) == MAX_ENTRIES
    path = tmp_path / "fstab"
    path.write_bytes(b"\xff\xfe garbage\n" + b"x" * (4 * MAX_FSTAB_BYTES))  # not UTF-8, no newline for megabytes
    assert read_fstab(path) == []
    assert read_fstab(tmp_path / "missing") == []


def test_sources_are_found_under_dev_disk_as_udev_names_them():
    dev = Path("/dev")
    assert source_device("LABEL=nvr-a") == dev / "disk/by-label/nvr-a"
    assert source_device('LABEL="Bay 1"') == dev / "disk/by-label/Bay\\x201"
    assert source_device("UUID=0a1b2c3d-aaaa-bbbb-cccc-0123456789ab") == \
        dev / "disk/by-uuid/0a1b2c3d-aaaa-bbbb-cccc-0123456789ab"
    assert source_device("PARTUUID=1234-01") == dev / "disk/by-partuuid/1234-01"
    assert source_device("PARTLABEL=data") == dev / "disk/by-partlabel/data"
    assert source_device("/dev/sdb1", dev=Path("/tmp/dev")) == Path("/tmp/dev/sdb1")


def test_sources_that_are_no_local_device_or_no_name_give_none():
    for source in ("server:/share", "//nas/share", "tmpfs", "LABEL=", "LABEL=..", "UUID=" + "a" * 300,
                   "/dev/../etc/passwd", "/srv/x", "KEY=x"):
        assert source_device(source) is None, source
    assert source_device("LABEL=a/b") == Path("/dev/disk/by-label/a\\x2fb")  # a slash cannot climb out


def test_the_mount_unit_is_named_as_systemd_escape_names_it():
    assert mount_unit("/srv/diska") == "srv-diska.mount"
    assert mount_unit("/srv/disk-a/") == "srv-disk\\x2da.mount"
    assert mount_unit("/mnt/bay 1") == "mnt-bay\\x201.mount"
    assert mount_unit("/") == "-.mount"
